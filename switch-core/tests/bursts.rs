//! A burst leaves the PMD by one of two ways: whole, when every packet of it goes to the same
//! single output (the batch is handed to the port), or packet by packet, when its flows go
//! different ways. Either way every packet must reach each of its outputs and no buffer may
//! be lost. Replay ports (frames from memory, no I/O) make the bursts exact: each burst of
//! 32 holds 8 packets of each of 4 flows.

use std::time::{Duration, Instant};

use flow_table::flow_syntax::{parse_flow, FlowMode};
use switch_core::{PortConfig, Switch, SwitchConfig};

/// Received on `a`, sent on `b`, sent on `c`.
fn counts(sw: &Switch) -> [u64; 3] {
    let ports = sw.ports("br").expect("ports");
    let get = |name: &str| ports.iter().find(|p| p.name == name).expect("port").stats;
    [
        get("a").rx_packets,
        get("b").tx_packets,
        get("c").tx_packets,
    ]
}

/// The counters' growth over `window`.
fn deltas(sw: &Switch, window: Duration) -> [u64; 3] {
    let before = counts(sw);
    std::thread::sleep(window);
    let after = counts(sw);
    [0, 1, 2].map(|i| after[i] - before[i])
}

fn add_flows(sw: &Switch, flows: &[&str]) {
    for f in flows {
        let parsed = parse_flow(f, FlowMode::Add, &|_| None).expect("flow");
        sw.add_flow("br", parsed.to_rule_spec()).expect("add flow");
    }
}

/// `got` is `want` within 1 % (the three counters are read a few microseconds apart while
/// the PMD forwards millions of packets a second).
fn near(got: u64, want: u64) -> bool {
    got.abs_diff(want) <= want / 100 + 1000
}

#[test]
fn split_and_whole_bursts_deliver_every_packet_and_lose_no_buffer() {
    let sw = Switch::start(SwitchConfig {
        pmd_cores: vec![None],
        internal_ports: false,
        ..SwitchConfig::default()
    })
    .expect("switch");
    sw.add_bridge("br").unwrap();
    let sink = PortConfig::Replay {
        flows: 0,
        frame_len: 60,
    };
    sw.add_port("br", "b", sink.clone(), Some(2)).unwrap();
    sw.add_port("br", "c", sink, Some(3)).unwrap();
    // Flow i comes from 10.0.0.i: one to b, one to c, one to both, one dropped.
    add_flows(
        &sw,
        &[
            "priority=10,ip,nw_src=10.0.0.0,actions=output:2",
            "priority=10,ip,nw_src=10.0.0.1,actions=output:3",
            "priority=10,ip,nw_src=10.0.0.2,actions=output:2,output:3",
            "priority=0,actions=drop",
        ],
    );
    sw.add_port(
        "br",
        "a",
        PortConfig::Replay {
            flows: 4,
            frame_len: 60,
        },
        Some(1),
    )
    .unwrap();
    // Millions of packets: a buffer lost per burst would empty the pool long before the end.
    std::thread::sleep(Duration::from_millis(300));
    let [rx, b, c] = deltas(&sw, Duration::from_millis(500));
    assert!(rx > 100_000, "the source stopped: {rx} packets received");
    assert!(near(b, rx / 2), "b sent {b} of {rx} (half expected)");
    assert!(near(c, rx / 2), "c sent {c} of {rx} (half expected)");
    let st = &sw.pmd_stats()[0];
    assert_eq!(st.drops[switch_core::DropReason::NoBuffer as usize], 0);

    // Now every packet goes to b alone: bursts are handed over whole.
    sw.del_flows("br", &flow_table::RuleFilter::all(), false)
        .expect("del flows");
    add_flows(&sw, &["priority=10,in_port=1,actions=output:2"]);
    let t0 = Instant::now();
    let [rx, b, c] = loop {
        // The old megaflows are gone once nothing reaches c any more.
        let d = deltas(&sw, Duration::from_millis(300));
        if d[2] == 0 || t0.elapsed() > Duration::from_secs(10) {
            break deltas(&sw, Duration::from_millis(500));
        }
    };
    assert!(rx > 100_000, "the source stopped: {rx} packets received");
    assert!(near(b, rx), "b sent {b} of {rx} (all expected)");
    assert_eq!(c, 0, "c still gets packets");
}
