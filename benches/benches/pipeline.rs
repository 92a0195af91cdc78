//! The datapath alone: one PMD thread forwards synthetic 64-byte frames between two replay
//! ports (no kernel, no guest), through the same parse → EMC → megaflow → actions → output
//! path a real port uses. It measures the PMD thread's own CPU time per forwarded packet
//! (from `/proc/self/task/TID/schedstat`, so time the thread spent preempted by other processes
//! of this noisy 2-core machine does not count), for the harness's scenarios `port`, `normal`
//! and `l3` with 1, 1000 and 100000 flows. Prints a Markdown table of medians, after the flow
//! setup rate: upcalls per second while 100000 new flows arrive at once.
//!
//!     cargo bench -p vswitch-benches --bench pipeline [-- --windows 5 --secs 1]

use std::time::{Duration, Instant};

use flow_table::flow_syntax::{parse_flow, FlowMode};
use flow_table::MacAddr;
use switch_core::{PortConfig, Switch, SwitchConfig};

const SCENARIOS: [&str; 3] = ["port", "normal", "l3"];
const FLOWS: [u32; 3] = [1, 1000, 100_000];

/// CPU time (ns) the named thread of this process has run.
fn thread_cpu_ns(comm: &str) -> Option<u64> {
    for t in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let name = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if name.trim() == comm {
            let s = std::fs::read_to_string(t.path().join("schedstat")).ok()?;
            return s.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct Row {
    ns_per_pkt: f64,
    mpps: f64,
    cycles_per_pkt: f64,
    emc_pct: f64,
}

/// A switch with one PMD on core 1 and bridge `bp` holding the sink port `b` (port 2).
fn switch_with_sink() -> Switch {
    let sw = Switch::start(SwitchConfig {
        pmd_cores: vec![Some(1)],
        internal_ports: false,
        ..SwitchConfig::default()
    })
    .expect("switch");
    sw.add_bridge("bp").unwrap();
    let sink = PortConfig::Replay {
        flows: 0,
        frame_len: 60,
    };
    sw.add_port("bp", "b", sink, Some(2)).unwrap();
    sw
}

fn measure(scenario: &str, flows: u32, windows: usize, secs: f64) -> Row {
    let sw = switch_with_sink();
    let frame_len = 60;
    sw.add_port("bp", "a", PortConfig::Replay { flows, frame_len }, Some(1))
        .unwrap();
    let flow = match scenario {
        "port" => "priority=10,in_port=1,actions=output:2",
        "normal" => "priority=0,actions=NORMAL",
        _ => "priority=10,udp,in_port=1,nw_dst=10.255.0.1,tp_dst=5001,actions=output:2",
    };
    let parsed = parse_flow(flow, FlowMode::Add, &|_| None).expect("flow");
    sw.add_flow("bp", parsed.to_rule_spec()).unwrap();
    if scenario == "normal" {
        sw.fdb_add("bp", "b", 0, MacAddr([2, 0, 0, 0, 0, 0x0b]))
            .unwrap();
    }
    let tx = || {
        sw.ports("bp")
            .unwrap()
            .iter()
            .find(|p| p.name == "b")
            .unwrap()
            .stats
            .tx_packets
    };
    std::thread::sleep(Duration::from_millis(500));
    let (mut ns, mut mpps, mut cyc, mut emc) = (vec![], vec![], vec![], vec![]);
    for _ in 0..windows {
        sw.clear_pmd_stats().unwrap();
        let (c0, p0, t0) = (thread_cpu_ns("pmd0").unwrap(), tx(), Instant::now());
        std::thread::sleep(Duration::from_secs_f64(secs));
        let (c1, p1, dt) = (thread_cpu_ns("pmd0").unwrap(), tx(), t0.elapsed());
        // Also a smoke test (`cargo test --all-targets` runs this quickly): it must forward.
        assert!(p1 > p0, "{scenario}/{flows}: nothing forwarded");
        let pkts = (p1 - p0) as f64;
        ns.push((c1 - c0) as f64 / pkts);
        mpps.push(pkts / dt.as_secs_f64() / 1e6);
        let st = &sw.pmd_stats()[0];
        cyc.push(st.cycles_per_packet());
        emc.push(100.0 * st.emc_hits as f64 / st.packets.max(1) as f64);
    }
    Row {
        ns_per_pkt: median(&mut ns),
        mpps: median(&mut mpps),
        cycles_per_pkt: median(&mut cyc),
        emc_pct: median(&mut emc),
    }
}

/// Upcalls per second while `flows` new flows arrive at once, each needing its own megaflow
/// (a rule on the exact source address is consulted first, so every megaflow keeps nw_src).
fn flow_setup(flows: u32) -> f64 {
    let sw = switch_with_sink();
    for f in [
        "priority=20,ip,in_port=1,nw_src=10.254.254.254,actions=drop",
        "priority=10,in_port=1,actions=output:2",
    ] {
        let parsed = parse_flow(f, FlowMode::Add, &|_| None).expect("flow");
        sw.add_flow("bp", parsed.to_rule_spec()).unwrap();
    }
    let t0 = Instant::now();
    sw.add_port(
        "bp",
        "a",
        PortConfig::Replay {
            flows,
            frame_len: 60,
        },
        Some(1),
    )
    .unwrap();
    let want = flows as u64 * 99 / 100;
    while t0.elapsed() < Duration::from_secs(20) {
        let st = &sw.pmd_stats()[0];
        if st.upcalls >= want {
            return st.upcalls as f64 / t0.elapsed().as_secs_f64();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("flow setup of {flows} flows did not finish in 20 s");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: f64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    // `cargo test --benches` runs bench targets with `--bench` absent: keep that quick.
    let quick = !args.iter().any(|a| a == "--bench");
    let windows = if quick {
        1
    } else {
        arg("--windows", 5.0) as usize
    };
    let secs = if quick { 0.2 } else { arg("--secs", 1.0) };
    let setup_flows = if quick { 1000 } else { 100_000 };
    let mut rates: Vec<f64> = (0..if quick { 1 } else { 3 })
        .map(|_| flow_setup(setup_flows))
        .collect();
    println!(
        "flow setup: {:.0} upcalls/s (median, {setup_flows} new flows at once)\n",
        median(&mut rates)
    );
    println!("| scenario | flows | PMD CPU ns/pkt | Mpps | PMD busy cycles/pkt | EMC hits % |");
    println!("|---|---|---|---|---|---|");
    for sc in SCENARIOS {
        for fl in FLOWS {
            let r = measure(sc, fl, windows, secs);
            println!(
                "| {sc} | {fl} | {:.1} | {:.2} | {:.0} | {:.0} |",
                r.ns_per_pkt, r.mpps, r.cycles_per_pkt, r.emc_pct
            );
        }
    }
}
