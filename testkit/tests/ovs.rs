//! The differential harness checked against Open vSwitch itself: the frames the trace
//! interpreter computes are the frames a private OVS really sends, and two private OVS agree
//! with each other on every packet (so the generator, the tracing and the comparison are
//! deterministic). Skips loudly when Open vSwitch is not installed.
//!
//! Longer: `TESTKIT_OVS_SEEDS=20 TESTKIT_OVS_PACKETS=200 cargo test -p testkit --test ovs -- --nocapture`.

use testkit::difftest::{DiffTest, Stats};
use testkit::flowgen::{self, Config};
use testkit::ovs::{self, PrivateOvs};
use testkit::packet::{diff, hex};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn start(test: &str, cfg: &Config) -> Option<PrivateOvs> {
    if let Err(why) = ovs::available() {
        eprintln!("SKIP: {test}: {why}");
        return None;
    }
    let mut sw = PrivateOvs::start(cfg.ports).expect("private OVS starts");
    for m in flowgen::static_macs(cfg) {
        sw.fdb_add(m.port, m.vlan, &m.mac).unwrap();
    }
    Some(sw)
}

#[test]
fn the_interpreter_gives_the_frames_ovs_sends() {
    let cfg = Config::default();
    let Some(mut sw) = start("the_interpreter_gives_the_frames_ovs_sends", &cfg) else {
        return;
    };
    sw.capture().unwrap();
    let (seeds, packets) = (env("TESTKIT_OVS_SEEDS", 2), env("TESTKIT_OVS_PACKETS", 50));
    let (mut compared, mut sent) = (0, 0);
    for seed in 1..=seeds {
        let flows: Vec<String> = flowgen::rule_set(seed, &cfg)
            .iter()
            .map(|r| r.to_string())
            .collect();
        sw.replace_flows(&flows)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        for p in flowgen::packets(seed, packets as usize, &cfg) {
            let traced = sw.trace(p.in_port, &p.frame).unwrap();
            let real = sw.send(p.in_port, &p.frame).unwrap();
            let mut t = traced.copies.clone();
            let mut r = real.clone();
            t.sort();
            r.sort();
            let show = |c: &[(u32, Vec<u8>)]| {
                c.iter()
                    .map(|(p, f)| format!("  port {p}: {}", hex(f)))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            let field_diffs: Vec<_> = t
                .iter()
                .zip(&r)
                .filter(|(a, b)| a != b)
                .map(|(a, b)| diff(&a.1, &b.1))
                .collect();
            assert_eq!(
                t,
                r,
                "seed {seed}, in_port={} {}: the interpreter and OVS differ {field_diffs:?}\n\
                 frame {}\ninterpreted:\n{}\nsent:\n{}\nflows:\n{}\n{}",
                p.in_port,
                p.what,
                hex(&p.frame),
                show(&t),
                show(&r),
                flows.join("\n"),
                traced.text
            );
            compared += 1;
            sent += r.len();
        }
    }
    eprintln!("{compared} packets: the interpreter's {sent} frames are those OVS sent");
}

#[test]
fn two_ovs_agree_on_every_packet() {
    let cfg = Config::default();
    let test = "two_ovs_agree_on_every_packet";
    let (Some(mut a), Some(mut b)) = (start(test, &cfg), start(test, &cfg)) else {
        return;
    };
    let mut t = DiffTest::new(&mut a, &mut b, &[], cfg);
    let (seeds, packets) = (env("TESTKIT_OVS_SEEDS", 3), env("TESTKIT_OVS_PACKETS", 60));
    let mut total = Stats::default();
    for seed in 1..=seeds {
        total.add(t.run_seed(seed, packets as usize));
    }
    eprint!("{}", total.summary(&[]));
    for r in &total.reproducers {
        eprintln!("{r}");
    }
    for (k, e) in &total.error_examples {
        eprintln!("--- {k}\n{e}");
    }
    assert!(total.clean(), "{}", total.summary(&[]));
    assert_eq!(total.packets, (seeds * packets) as usize);
}
