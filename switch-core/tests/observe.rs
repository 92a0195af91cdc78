//! Observability end to end, with namespaces joined through the switch by veth pairs and real
//! ping traffic: live capture (both directions, losses with a slow reader), the trace of a real
//! packet, and drop counters by reason (policy, no route, malformed).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use flow_table::key::{ethertype, ipproto};
use flow_table::{Action, DpAction, Hit, Match, RuleSpec};
use ports::SystemMode;
use switch_core::{CaptureDir, DropReason, PortConfig, Switch, SwitchConfig};
use testkit::netns::{unique, Host};
use testkit::require::{can_run, serial, Need};

/// A switch without internal ports, with a bridge joining two fresh hosts as ports 1 and 2.
fn two_hosts(net: u8) -> (Switch, String, Host, Host) {
    let (h1, v1) = Host::veth(&format!("10.{net}.0.1"));
    let (h2, v2) = Host::veth(&format!("10.{net}.0.2"));
    let sw = Switch::start(SwitchConfig {
        internal_ports: false,
        ..SwitchConfig::default()
    })
    .unwrap();
    let br = unique("vsbr");
    sw.add_bridge(&br).unwrap();
    for v in [&v1, &v2] {
        sw.add_port(
            &br,
            v,
            PortConfig::System {
                mode: SystemMode::AfPacket,
            },
            None,
        )
        .unwrap();
    }
    (sw, br, h1, h2)
}

fn is_icmp_echo(f: &[u8], ty: u8) -> bool {
    f.len() >= 14 + 20 + 8
        && f[12..14] == [0x08, 0x00]
        && f[14 + 9] == ipproto::ICMP
        && f[14 + 20] == ty
}

#[test]
fn capture_sees_both_directions_and_a_slow_reader_loses_frames_not_traffic() {
    let _serial = serial();
    if !can_run(
        "capture_both_directions",
        &[Need::Netns, Need::Tool("ping")],
    ) {
        return;
    }
    let (sw, br, h1, h2) = two_hosts(211);
    assert!(h1.ping_until_ok(&h2.ip, Duration::from_secs(5)));

    let cap = sw.capture(&br, "1", CaptureDir::Both, 1024, 96).unwrap();
    assert!(h1.ping(&h2.ip, 3));
    let mut frames = Vec::new();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        match cap.frames().recv_timeout(Duration::from_millis(200)) {
            Ok(f) => frames.push(f),
            Err(_) if frames.len() >= 6 => break,
            Err(_) => {}
        }
    }
    let requests = frames
        .iter()
        .filter(|f| !f.tx && is_icmp_echo(&f.data, 8))
        .count();
    let replies = frames
        .iter()
        .filter(|f| f.tx && is_icmp_echo(&f.data, 0))
        .count();
    assert!(
        requests >= 3,
        "echo requests received on port 1: {requests}"
    );
    assert!(replies >= 3, "echo replies sent out of port 1: {replies}");
    assert!(frames.iter().all(|f| f.data.len() <= 96), "snap length");
    assert!(
        frames.iter().all(|f| f.orig_len >= 98),
        "ping frames are 98 bytes"
    );
    assert_eq!(cap.lost(), 0);
    drop(cap);

    // A capture of rx only, with room for 2 frames and nobody reading: the pings still pass,
    // the capture loses the rest and counts them.
    let cap = sw.capture(&br, "1", CaptureDir::Rx, 2, 64).unwrap();
    assert!(
        h1.ping(&h2.ip, 5),
        "a full capture buffer slowed the datapath"
    );
    assert!(cap.lost() >= 3, "lost {}", cap.lost());
    let kept: Vec<_> = cap.frames().try_iter().collect();
    assert_eq!(kept.len(), 2);
    assert!(kept.iter().all(|f| !f.tx));
    drop(cap);
    // Disarmed: a new capture starts empty and the old one left nothing behind.
    assert!(h1.ping(&h2.ip, 1));
}

#[test]
fn the_next_matching_real_packet_is_traced() {
    let _serial = serial();
    if !can_run("real_packet_trace", &[Need::Netns, Need::Tool("ping")]) {
        return;
    }
    let (sw, br, h1, h2) = two_hosts(212);
    assert!(h1.ping_until_ok(&h2.ip, Duration::from_secs(5)));
    let filter = Match::any()
        .eth_type(ethertype::IPV4)
        .nw_proto(ipproto::ICMP)
        .nw_dst(h2.ip.parse::<Ipv4Addr>().unwrap(), 32);
    // Nothing matches while nobody pings: the trace times out.
    let none = sw
        .trace_packet(&br, "1", filter, Duration::from_millis(300))
        .unwrap();
    assert!(none.is_none());

    let pinger = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let ok = h1.ping(&h2.ip, 3);
        (ok, h1, h2)
    });
    let t = sw
        .trace_packet(&br, "1", filter, Duration::from_secs(5))
        .unwrap()
        .expect("an echo request was traced");
    let (ok, _h1, _h2) = pinger.join().unwrap();
    assert!(ok, "tracing disturbed the pings");
    assert_eq!(t.key.in_port, 1);
    assert_eq!(t.key.nw_proto, ipproto::ICMP);
    assert_eq!(t.len, 98);
    assert!(matches!(t.hit, Hit::Emc | Hit::Megaflow | Hit::Upcall));
    // h2 was learnt on port 2 by the first pings.
    assert_eq!(t.actions, vec![DpAction::Output(2)]);
    assert_eq!(t.report.outputs, vec![2]);
    let text = t.report.to_text(&|_| None);
    assert!(text.contains("priority 0, cookie 0x0"), "{text}");
    assert!(
        text.contains("NORMAL: forwarding to learned port 2"),
        "{text}"
    );
    // One shot: the rule counters saw only the real traffic, and the trace is disarmed.
    assert!(sw
        .trace_packet(&br, "1", filter, Duration::from_millis(200))
        .unwrap()
        .is_none());
}

#[test]
fn drops_are_counted_by_reason_on_the_ingress_port() {
    let _serial = serial();
    if !can_run("drop_reasons", &[Need::Netns, Need::Tool("ping")]) {
        return;
    }
    let (sw, br, h1, h2) = two_hosts(213);
    assert!(h1.ping_until_ok(&h2.ip, Duration::from_secs(5)));
    let reason = |port: u32, r: DropReason| sw.port_drops(&br).unwrap()[&port][r as usize];
    assert_eq!(reason(1, DropReason::Policy), 0);

    // Policy: a drop rule.
    let ip_to = |last: u8| {
        Match::any()
            .eth_type(ethertype::IPV4)
            .nw_dst(Ipv4Addr::new(10, 213, 0, last), 32)
    };
    sw.add_flow(&br, RuleSpec::new(100, ip_to(2), vec![Action::Drop]))
        .unwrap();
    assert!(!h1.ping(&h2.ip, 3));
    assert!(reason(1, DropReason::Policy) >= 3, "policy drops");

    // No route: output to a port that does not exist (10.213.0.9 is pinned to h2's MAC).
    sw.add_flow(&br, RuleSpec::new(100, ip_to(9), vec![Action::Output(9)]))
        .unwrap();
    h1.arp("10.213.0.9", &h2.mac());
    assert!(!h1.ping("10.213.0.9", 2));
    assert!(reason(1, DropReason::NoPort) >= 2, "no-route drops");
    // No route for NORMAL: h2's address pinned to h1's own port.
    let before = reason(1, DropReason::NoPort);
    sw.fdb_add(&br, "1", 0, h2.mac().parse().unwrap()).unwrap();
    h1.arp("10.213.0.7", &h2.mac());
    assert!(!h1.ping("10.213.0.7", 2));
    assert!(
        reason(1, DropReason::NoPort) >= before + 2,
        "NORMAL no-route drops"
    );

    // Upcall failed: a rule that resubmits to its own table loops until translation gives
    // up; every packet of that flow (the upcall's and the cached megaflow's) counts.
    sw.add_flow(
        &br,
        RuleSpec::new(
            100,
            ip_to(8),
            vec![Action::Resubmit {
                port: None,
                table: Some(0),
            }],
        ),
    )
    .unwrap();
    h1.arp("10.213.0.8", &h2.mac());
    assert!(!h1.ping("10.213.0.8", 3));
    assert!(reason(1, DropReason::UpcallFailed) >= 3, "upcall failures");
    let policy = reason(1, DropReason::Policy);

    // Malformed: an IPv4 frame whose header says version 6, sent raw by h1.
    let mut frame = vec![0u8; 60];
    frame[0..6].copy_from_slice(&[0xff; 6]);
    frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 0x99]);
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14] = 0x65;
    for _ in 0..4 {
        h1.send_raw(&frame);
    }
    let start = Instant::now();
    while reason(1, DropReason::Malformed) < 4 && start.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(reason(1, DropReason::Malformed), 4, "malformed drops");
    assert_eq!(
        reason(1, DropReason::Policy),
        policy,
        "nothing else was counted as policy"
    );
    // Port 2 received nothing that was dropped; the PMD totals agree.
    assert!(sw.port_drops(&br).unwrap()[&2].iter().all(|&n| n == 0));
    let pmd: u64 = sw
        .pmd_stats()
        .iter()
        .map(|s| s.drops[DropReason::Malformed as usize])
        .sum();
    assert_eq!(pmd, 4);
}

#[test]
fn rxq_usage_grows_with_traffic() {
    let _serial = serial();
    if !can_run("rxq_usage", &[Need::Netns, Need::Tool("ping")]) {
        return;
    }
    let (sw, _br, h1, h2) = two_hosts(214);
    assert!(h1.ping_until_ok(&h2.ip, Duration::from_secs(5)));
    assert!(h1.ping(&h2.ip, 3));
    let rows = sw.rxq_usage().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.cycles > 0), "{rows:?}");
    assert!(rows
        .iter()
        .all(|r| r.usage_percent > 0.0 && r.usage_percent <= 100.0));
    sw.clear_pmd_stats().unwrap();
    assert!(sw.rxq_usage().unwrap().iter().all(|r| r.cycles == 0));
}
