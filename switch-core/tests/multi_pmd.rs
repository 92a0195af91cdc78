//! Two PMD threads: every port opened once per PMD, receive queues spread over the PMDs and
//! spread again when ports leave, traffic through both.

use std::time::Duration;

use ports::SystemMode;
use switch_core::{PortConfig, Switch, SwitchConfig};
use testkit::netns::{iperf3_json, unique, Host};
use testkit::require::{can_run, serial, Need};

fn two_pmds() -> Switch {
    Switch::start(SwitchConfig {
        pmd_cores: vec![None, None],
        internal_ports: false,
        ..SwitchConfig::default()
    })
    .expect("switch starts")
}

/// Receive queues each PMD polls.
fn loads(sw: &Switch) -> Vec<usize> {
    let mut l = vec![0; sw.n_pmds()];
    for r in sw.rxqs() {
        l[r.pmd] += r.n_rxq;
    }
    l
}

#[test]
fn afpacket_fanout_spreads_flows_over_both_pmds() {
    let _serial = serial();
    if !can_run(
        "afpacket_fanout_spreads_flows",
        &[Need::Netns, Need::Tool("ping"), Need::Tool("iperf3")],
    ) {
        return;
    }
    let (h1, v1) = Host::veth("10.211.0.1");
    let (h2, v2) = Host::veth("10.211.0.2");
    let sw = two_pmds();
    let br = unique("vsmp");
    sw.add_bridge(&br).unwrap();
    let mode = PortConfig::System {
        mode: SystemMode::AfPacket,
    };
    sw.add_port(&br, &v1, mode.clone(), None).unwrap();
    sw.add_port(&br, &v2, mode, None).unwrap();
    // One fanout socket per PMD on each port: both PMDs poll both ports.
    let rows = sw.rxqs();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows.iter().all(|r| r.n_rxq == 1), "{rows:?}");

    assert!(h1.ping_until_ok(&h2.ip, Duration::from_secs(5)));
    sw.clear_pmd_stats().unwrap();
    // Sixteen TCP streams: the fanout hash gives each PMD some of them.
    let json = iperf3_json(&h1, &h2, 2, &["-P", "16"]).expect("iperf3 through two PMDs");
    assert!(json.contains("\"sum_received\""), "{json}");
    let stats = sw.pmd_stats();
    for s in &stats {
        assert!(
            s.packets > 100,
            "PMD {} saw {} packets: traffic did not spread",
            s.pmd,
            s.packets
        );
    }
    eprintln!(
        "packets per PMD: {:?}",
        stats.iter().map(|s| s.packets).collect::<Vec<_>>()
    );
    assert!(h2.ping(&h1.ip, 2));
}

#[test]
fn single_queue_ports_are_placed_round_robin_and_rebalanced() {
    let _serial = serial();
    if !can_run(
        "single_queue_ports_round_robin",
        &[Need::Netns, Need::Tool("ping")],
    ) {
        return;
    }
    let (h1, v1) = Host::veth("10.212.0.1");
    let (h2, v2) = Host::veth("10.212.0.2");
    let (h3, v3) = Host::veth("10.212.0.3");
    let sw = two_pmds();
    let br = unique("vsrr");
    sw.add_bridge(&br).unwrap();
    // AF_XDP on a veth: one device queue, so one instance of each port receives.
    let xdp = PortConfig::System {
        mode: SystemMode::AfXdp,
    };
    for v in [&v1, &v2, &v3] {
        sw.add_port(&br, v, xdp.clone(), None).unwrap();
    }
    let owner = |sw: &Switch, port: &str| {
        sw.rxqs()
            .into_iter()
            .find(|r| r.port == port && r.n_rxq > 0)
            .map(|r| r.pmd)
            .expect("a PMD polls the port")
    };
    assert_eq!(loads(&sw), vec![2, 1], "{:?}", sw.rxqs());
    assert_ne!(owner(&sw, &v1), owner(&sw, &v2));
    assert!(h1.ping_until_ok(&h3.ip, Duration::from_secs(5)));
    assert!(h2.ping(&h3.ip, 2));

    // The port alone on its PMD leaves: the other two are spread again, and still forward.
    let alone = [&v1, &v2, &v3]
        .into_iter()
        .find(|v| loads(&sw)[owner(&sw, v)] == 1)
        .expect("one port is alone on its PMD")
        .clone();
    sw.del_port(&br, &alone).unwrap();
    assert_eq!(loads(&sw), vec![1, 1], "{:?}", sw.rxqs());
    let (a, b) = match alone.as_str() {
        x if x == v1 => (&h2, &h3),
        x if x == v2 => (&h1, &h3),
        _ => (&h1, &h2),
    };
    assert!(
        a.ping_until_ok(&b.ip, Duration::from_secs(5)),
        "no traffic after the rebalance"
    );
    assert!(b.ping(&a.ip, 3));
    let rx: u64 = sw.pmd_stats().iter().map(|s| s.packets).sum();
    assert!(rx > 0);
}
