//! End-to-end tests with real kernel interfaces: namespaces joined through the switch by veth
//! pairs (system ports, AF_PACKET and AF_XDP) and taps, real ping and iperf3 traffic.

use std::time::Duration;

use flow_table::key::{ethertype, ipproto};
use flow_table::{Action, Match, RuleFilter, RuleSpec};
use ports::SystemMode;
use switch_core::{PortConfig, Switch, SwitchConfig};
use testkit::netns::{if_stat, iperf3, unique, Host};
use testkit::require::{can_run, serial, Need};

fn switch() -> Switch {
    Switch::start(SwitchConfig::default()).expect("switch starts")
}

fn system(mode: SystemMode) -> PortConfig {
    PortConfig::System { mode }
}

/// A switch without internal ports, so that the only frames are the test's.
fn quiet_switch() -> Switch {
    Switch::start(SwitchConfig {
        internal_ports: false,
        ..SwitchConfig::default()
    })
    .unwrap()
}

/// A new bridge on `sw` with `ports` (kernel interfaces) as ports 1, 2, ...
fn bridge_with(sw: &Switch, ports: &[&str], mode: SystemMode) -> String {
    let br = unique("vsbr");
    sw.add_bridge(&br).unwrap();
    for (i, p) in ports.iter().enumerate() {
        let no = sw.add_port(&br, p, system(mode), None).unwrap();
        assert_eq!(no as usize, i + 1);
    }
    br
}

#[test]
fn veth_ping_tcp_and_a_drop_rule_that_takes_effect_at_once() {
    let _serial = serial();
    if !can_run(
        "veth_ping_tcp_and_drop_rule",
        &[Need::Netns, Need::Tool("ping"), Need::Tool("iperf3")],
    ) {
        return;
    }
    let (h1, v1) = Host::veth("10.201.0.1");
    let (h2, v2) = Host::veth("10.201.0.2");
    let sw = switch();
    let br = bridge_with(&sw, &[&v1, &v2], SystemMode::AfPacket);

    assert!(
        h1.ping_until_ok(&h2.ip, Duration::from_secs(5)),
        "no connectivity"
    );
    assert!(h1.ping(&h2.ip, 3));

    let bps = iperf3(&h1, &h2, 2, None).expect("iperf3 TCP through the switch");
    eprintln!("TCP through AF_PACKET ports: {:.2} Gbit/s", bps / 1e9);
    assert!(bps > 50e6, "TCP crawls: {bps} bit/s");

    let drop = RuleSpec::new(
        100,
        Match::any().eth_type(ethertype::IPV4),
        vec![Action::Drop],
    );
    sw.add_flow(&br, drop.clone()).unwrap();
    assert!(!h1.ping(&h2.ip, 2), "the drop rule let pings through");
    let gone = sw
        .del_flows(&br, &RuleFilter::matching(drop.r#match, 100), true)
        .unwrap();
    assert_eq!(gone.len(), 1);
    assert!(
        gone[0].stats.packets() >= 2,
        "the drop rule counted the pings it dropped"
    );
    // No retry: the very next ping must pass.
    assert!(
        h1.ping(&h2.ip, 1),
        "traffic did not resume right after the delete"
    );
}

#[test]
fn afxdp_ports_forward() {
    let _serial = serial();
    if !can_run("afxdp_ports_forward", &[Need::Netns, Need::Tool("ping")]) {
        return;
    }
    let (h1, v1) = Host::veth("10.202.0.1");
    let (h2, v2) = Host::veth("10.202.0.2");
    let sw = switch();
    let br = bridge_with(&sw, &[&v1, &v2], SystemMode::AfXdp);
    let kinds: Vec<_> = sw.ports(&br).unwrap().iter().map(|p| p.kind).collect();
    assert!(kinds.contains(&ports::PortKind::SystemAfXdp), "{kinds:?}");
    assert!(h1.ping_until_ok(&h2.ip, Duration::from_secs(5)));
    assert!(h2.ping(&h1.ip, 3));
}

#[test]
fn tap_port_to_veth_port() {
    let _serial = serial();
    if !can_run(
        "tap_port_to_veth_port",
        &[Need::Netns, Need::Tool("ping"), Need::Tool("iperf3")],
    ) {
        return;
    }
    let sw = switch();
    let br = unique("vsbr");
    sw.add_bridge(&br).unwrap();
    let tap = unique("vswt");
    sw.add_port(&br, &tap, PortConfig::Tap { offloads: true }, None)
        .unwrap();
    let h1 = Host::tap(&tap, "10.203.0.1");
    let (h2, v2) = Host::veth("10.203.0.2");
    sw.add_port(&br, &v2, system(SystemMode::AfPacket), None)
        .unwrap();

    assert!(h1.ping_until_ok(&h2.ip, Duration::from_secs(5)));
    assert!(h2.ping(&h1.ip, 3));
    let bps = iperf3(&h1, &h2, 2, None).expect("iperf3 TCP tap -> veth");
    eprintln!("TCP tap -> AF_PACKET: {:.2} Gbit/s", bps / 1e9);
    assert!(bps > 50e6);
    let bps = iperf3(&h2, &h1, 2, None).expect("iperf3 TCP veth -> tap");
    eprintln!("TCP AF_PACKET -> tap: {:.2} Gbit/s", bps / 1e9);
    assert!(bps > 50e6);
}

#[test]
fn learning_stops_flooding() {
    let _serial = serial();
    if !can_run(
        "learning_stops_flooding",
        &[Need::Netns, Need::Tool("ping")],
    ) {
        return;
    }
    let (h1, v1) = Host::veth("10.204.0.1");
    let (h2, v2) = Host::veth("10.204.0.2");
    let (_h3, v3) = Host::veth("10.204.0.3");
    // Static ARP: the only frames are the pings themselves.
    h1.arp(&h2.ip, &h2.mac());
    h2.arp(&h1.ip, &h1.mac());
    let sw = quiet_switch();
    let br = bridge_with(&sw, &[&v1, &v2, &v3], SystemMode::AfPacket);
    let tx3 = || sw.ports(&br).unwrap()[2].stats.tx_packets;
    assert_eq!(tx3(), 0);
    // The first request goes to an unknown address: flooded, so port 3 sees it.
    assert!(h1.ping_until_ok(&h2.ip, Duration::from_secs(5)));
    let flooded = tx3();
    assert!(flooded >= 1, "an unknown destination must be flooded");
    assert!(h1.ping(&h2.ip, 5));
    assert!(h2.ping(&h1.ip, 5));
    assert_eq!(
        tx3(),
        flooded,
        "learned unicast traffic still reached a third port"
    );
    let fdb = sw.fdb(&br).unwrap();
    assert_eq!(fdb.len(), 2, "{fdb:?}");
}

#[test]
fn counters_match_what_was_sent() {
    let _serial = serial();
    if !can_run(
        "counters_match_what_was_sent",
        &[Need::Netns, Need::Tool("ping")],
    ) {
        return;
    }
    let (h1, v1) = Host::veth("10.205.0.1");
    let (h2, v2) = Host::veth("10.205.0.2");
    h1.arp(&h2.ip, &h2.mac());
    h2.arp(&h1.ip, &h1.mac());
    let sw = quiet_switch();
    let br = bridge_with(&sw, &[&v1, &v2], SystemMode::AfPacket);
    let icmp = |port| {
        Match::any()
            .in_port(port)
            .eth_type(ethertype::IPV4)
            .nw_proto(ipproto::ICMP)
    };
    sw.add_flows(
        &br,
        vec![
            RuleSpec::new(10, icmp(1), vec![Action::Output(2)]),
            RuleSpec::new(10, icmp(2), vec![Action::Output(1)]),
        ],
    )
    .unwrap();
    let (k_rx, k_tx) = (if_stat(&v1, "rx_packets"), if_stat(&v1, "tx_packets"));
    assert!(h1.ping(&h2.ip, 7));
    let rules = sw.flows(&br).unwrap();
    let count = |port| {
        rules
            .iter()
            .find(|r| r.r#match == icmp(port))
            .map(|r| r.stats.packets())
    };
    assert_eq!(count(1), Some(7), "requests");
    assert_eq!(count(2), Some(7), "replies");
    let p1 = &sw.ports(&br).unwrap()[0];
    assert_eq!(p1.stats.rx_packets, if_stat(&v1, "rx_packets") - k_rx);
    assert_eq!(p1.stats.tx_packets, if_stat(&v1, "tx_packets") - k_tx);
    assert_eq!(p1.stats.rx_packets, 7);
    let pmd = &sw.pmd_stats()[0];
    assert_eq!(pmd.packets, 14);
    assert_eq!(pmd.upcalls + pmd.emc_hits + pmd.megaflow_hits, 14);
    assert!(pmd.upcalls >= 2, "one per direction at least");
    // Pings come one at a time: each burst brought at least one of the 14 packets.
    assert!((1..=14).contains(&pmd.rx_batches), "{}", pmd.rx_batches);
}

#[test]
fn port_deletion_stops_traffic_and_cleans_up() {
    let _serial = serial();
    if !can_run("port_deletion", &[Need::Netns, Need::Tool("ping")]) {
        return;
    }
    let (h1, v1) = Host::veth("10.206.0.1");
    let (h2, v2) = Host::veth("10.206.0.2");
    let sw = switch();
    let br = bridge_with(&sw, &[&v1, &v2], SystemMode::AfPacket);
    assert!(h1.ping_until_ok(&h2.ip, Duration::from_secs(5)));
    sw.del_port(&br, &v2).unwrap();
    assert!(!h1.ping(&h2.ip, 1));
    assert!(sw.fdb(&br).unwrap().iter().all(|r| r.port != 2));
    // Re-adding restores traffic.
    sw.add_port(&br, &v2, system(SystemMode::AfPacket), None)
        .unwrap();
    assert!(h1.ping_until_ok(&h2.ip, Duration::from_secs(5)));
    sw.del_bridge(&br).unwrap();
    assert!(sw.bridges().is_empty());
}
