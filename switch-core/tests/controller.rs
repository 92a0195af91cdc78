//! What an OpenFlow controller gets from the datapath and does with it: packet-ins (a
//! `controller` action, a table miss), fail-open, packet-out, flow-removed, and a full event
//! queue. Dummy bridges and ports: no root needed.

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use flow_table::flow_syntax::{parse_flow, FlowMode};
use flow_table::{extract, Action, RuleFilter, RuleSpec};
use switch_core::{
    BridgeOptions, DatapathType, DropReason, FlowRemovedReason, MissConfig, PacketIn,
    PacketInReason, PortConfig, Switch, SwitchConfig, SwitchError, SwitchEvent, CONTROLLER_PORT,
    LOCAL_PORT,
};

const WAIT: Duration = Duration::from_secs(5);

/// A switch (two PMDs) with dummy bridge `br` and dummy ports p1, p2, p3 (numbers 1 to 3).
fn setup(br: &str) -> Switch {
    let sw = Switch::start(SwitchConfig {
        pmd_cores: vec![None, None],
        ..SwitchConfig::default()
    })
    .unwrap();
    sw.add_bridge_with(
        br,
        BridgeOptions {
            datapath_type: DatapathType::Dummy,
        },
    )
    .unwrap();
    for p in ["p1", "p2", "p3"] {
        sw.add_port(br, p, PortConfig::Dummy, None).unwrap();
    }
    sw
}

fn spec(flow: &str) -> RuleSpec {
    parse_flow(flow, FlowMode::Add, &|_| None)
        .unwrap_or_else(|e| panic!("{flow}: {e}"))
        .to_rule_spec()
}

/// Replaces the bridge's rules by `flows`.
fn rules(sw: &Switch, br: &str, flows: &[&str]) {
    sw.del_flows(br, &RuleFilter::all(), false).unwrap();
    sw.add_flows(br, flows.iter().map(|f| spec(f)).collect())
        .unwrap();
}

/// A frame of `len` bytes from MAC ..:src to MAC ..:dst (0xff: broadcast), numbered `tag`.
fn frame(dst: u8, src: u8, tag: u8, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    if dst == 0xff {
        f[0..6].copy_from_slice(&[0xff; 6]);
    } else {
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, dst]);
    }
    f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, src]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]);
    f[14] = tag;
    f[len - 1] = 0xee;
    f
}

/// Takes what `port` sent until `n` frames came (or [`WAIT`] passed).
fn take(sw: &Switch, br: &str, port: &str, n: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + WAIT;
    let mut got = Vec::new();
    while got.len() < n && Instant::now() < deadline {
        got.extend(sw.dummy_take_sent(br, port).unwrap().0);
        std::thread::sleep(Duration::from_millis(2));
    }
    got
}

/// What `port` sent over the next `ms` milliseconds (to check that nothing comes).
fn quiet(sw: &Switch, br: &str, port: &str, ms: u64) -> Vec<Vec<u8>> {
    std::thread::sleep(Duration::from_millis(ms));
    sw.dummy_take_sent(br, port).unwrap().0
}

fn packet_in(events: &Receiver<SwitchEvent>) -> PacketIn {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(SwitchEvent::PacketIn(p)) => return p,
            Ok(SwitchEvent::FlowRemoved(_)) => continue,
            Err(e) => panic!("no packet-in within {WAIT:?}: {e}"),
        }
    }
}

#[test]
fn a_controller_action_sends_the_whole_packet_with_its_rules_table_and_cookie() {
    let br = "ofc0";
    let sw = setup(br);
    let events = sw.events();
    rules(
        &sw,
        br,
        &[
            "priority=10,cookie=0x99,in_port=1,actions=controller:64",
            "priority=10,in_port=2,actions=goto_table:3",
            "table=3,priority=5,cookie=0x33,actions=controller(max_len=1000),output:3",
        ],
    );
    let f = frame(9, 1, 1, 100);
    sw.dummy_receive(br, "p1", vec![f.clone()]).unwrap();
    let p = packet_in(&events);
    assert_eq!(&*p.bridge, br);
    assert_eq!(p.reason, PacketInReason::Action);
    assert_eq!((p.in_port, p.table, p.cookie), (1, 0, 0x99));
    assert_eq!(p.total_len, 100);
    // Unbuffered, so the complete packet, past max_len (as OpenFlow says and OVS does).
    assert_eq!(p.data, f);
    assert_eq!(p.tun_id, 0);
    // The packet went nowhere else, and was not counted as a drop.
    assert!(quiet(&sw, br, "p2", 20).is_empty());
    assert!(sw
        .pmd_stats()
        .iter()
        .all(|s| s.drops[DropReason::Policy as usize] == 0));

    // From a later table, the whole (shorter than max_len) packet, and the output after it.
    let f = frame(9, 2, 2, 80);
    sw.dummy_receive(br, "p2", vec![f.clone()]).unwrap();
    let p = packet_in(&events);
    assert_eq!((p.in_port, p.table, p.cookie), (2, 3, 0x33));
    assert_eq!((p.total_len, p.data.clone()), (80, f.clone()));
    assert_eq!(take(&sw, br, "p3", 1), vec![f]);

    // A cached decision (megaflow, EMC) sends packet-ins as well.
    let frames: Vec<Vec<u8>> = (0..20).map(|i| frame(9, 1, i, 70)).collect();
    sw.dummy_receive(br, "p1", frames.clone()).unwrap();
    for f in &frames {
        assert_eq!(&packet_in(&events).data, f);
    }
}

#[test]
fn a_miss_goes_to_the_controller_when_the_bridge_says_so() {
    let br = "ofc1";
    let sw = setup(br);
    let events = sw.events();
    rules(&sw, br, &["priority=10,in_port=3,actions=output:1"]);
    sw.set_miss(
        br,
        MissConfig {
            fail_open: false,
            controller: Some(128),
        },
    )
    .unwrap();
    assert_eq!(sw.miss(br).unwrap().controller, Some(128));
    let f = frame(9, 1, 1, 200);
    sw.dummy_receive(br, "p1", vec![f.clone()]).unwrap();
    let p = packet_in(&events);
    assert_eq!(p.reason, PacketInReason::NoMatch);
    assert_eq!((p.in_port, p.table, p.cookie), (1, 0, u64::MAX));
    assert_eq!((p.total_len, p.data.len()), (200, 200));
    assert_eq!(p.data, f);
    // trace shows it.
    let key = extract(&f, 1);
    let t = sw.trace(br, &key, Some(&f)).unwrap();
    assert_eq!(t.to_controller, vec![(PacketInReason::NoMatch, 128)]);
    assert!(t.drop.is_none());
    assert!(
        t.to_text(&|_| None).contains("CONTROLLER:128 (no_match)"),
        "{}",
        t.to_text(&|_| None)
    );

    // Back to dropping misses: the cached decision is gone too.
    sw.set_miss(br, MissConfig::default()).unwrap();
    sw.dummy_receive(br, "p1", vec![f.clone()]).unwrap();
    assert!(events.recv_timeout(Duration::from_millis(200)).is_err());
    assert_eq!(
        sw.trace(br, &key, None).unwrap().drop,
        Some(DropReason::Policy)
    );

    // A table-miss entry (priority 0, empty match) sends with reason no_match too.
    rules(
        &sw,
        br,
        &["table=0,priority=0,cookie=0x7,actions=controller"],
    );
    sw.dummy_receive(br, "p1", vec![f.clone()]).unwrap();
    let p = packet_in(&events);
    assert_eq!((p.reason, p.cookie), (PacketInReason::NoMatch, 0x7));
    assert_eq!(p.data, f);
}

#[test]
fn fail_open_forwards_by_normal_and_turning_it_off_restores_the_rules() {
    let br = "ofc2";
    let sw = setup(br);
    rules(&sw, br, &["priority=10,in_port=1,actions=output:3"]);
    let f = frame(0xff, 1, 1, 60);
    sw.dummy_receive(br, "p1", vec![f.clone()]).unwrap();
    assert_eq!(take(&sw, br, "p3", 1), vec![f.clone()]);
    assert!(quiet(&sw, br, "p2", 20).is_empty());

    sw.set_miss(
        br,
        MissConfig {
            fail_open: true,
            controller: None,
        },
    )
    .unwrap();
    let key = extract(&f, 1);
    let t = sw.trace(br, &key, None).unwrap();
    assert!(t.fail_open && t.tables.is_empty(), "{t:?}");
    assert!(t.to_text(&|_| None).contains("fail-open"));
    // NORMAL floods the broadcast to every other port, LOCAL included.
    sw.dummy_receive(br, "p1", vec![f.clone()]).unwrap();
    for p in ["p2", "p3", br] {
        assert_eq!(take(&sw, br, p, 1), vec![f.clone()], "flooded to {p}");
    }
    // The rule is still there, its counter untouched by the fail-open packet.
    let flows = sw.flows(br).unwrap();
    assert_eq!(flows.len(), 1);
    assert_eq!(flows[0].stats.packets(), 1);

    sw.set_miss(br, MissConfig::default()).unwrap();
    sw.dummy_receive(br, "p1", vec![f.clone()]).unwrap();
    assert_eq!(take(&sw, br, "p3", 1), vec![f]);
    assert!(quiet(&sw, br, "p2", 30).is_empty());
    assert_eq!(sw.flows(br).unwrap()[0].stats.packets(), 2);
}

#[test]
fn packet_out_outputs_floods_and_runs_the_tables() {
    let br = "ofc3";
    let sw = setup(br);
    rules(&sw, br, &["priority=10,in_port=1,actions=output:3"]);
    let f = frame(9, 1, 1, 60);

    sw.packet_out(br, CONTROLLER_PORT, f.clone(), vec![Action::Output(2)])
        .unwrap();
    assert_eq!(take(&sw, br, "p2", 1), vec![f.clone()]);

    // FLOOD from port 1: every port but 1.
    sw.packet_out(br, 1, f.clone(), vec![Action::Flood])
        .unwrap();
    for p in ["p2", "p3", br] {
        assert_eq!(take(&sw, br, p, 1), vec![f.clone()], "flooded to {p}");
    }
    assert!(quiet(&sw, br, "p1", 20).is_empty());

    // An output to the in_port is skipped; IN_PORT sends there.
    sw.packet_out(br, 1, f.clone(), vec![Action::Output(1), Action::InPort])
        .unwrap();
    assert_eq!(take(&sw, br, "p1", 1), vec![f.clone()]);
    assert!(quiet(&sw, br, "p1", 20).is_empty());

    // TABLE: through the rules, which count it.
    let before = sw.flows(br).unwrap()[0].stats.packets();
    sw.packet_out(
        br,
        1,
        f.clone(),
        vec![Action::Resubmit {
            port: None,
            table: Some(0),
        }],
    )
    .unwrap();
    assert_eq!(take(&sw, br, "p3", 1), vec![f.clone()]);
    assert_eq!(sw.flows(br).unwrap()[0].stats.packets(), before + 1);

    // NORMAL from the controller: no learning, flooded to every port.
    sw.packet_out(br, CONTROLLER_PORT, f.clone(), vec![Action::Normal])
        .unwrap();
    for p in ["p1", "p2", "p3", br] {
        assert_eq!(take(&sw, br, p, 1), vec![f.clone()], "NORMAL to {p}");
    }
    assert!(sw.fdb(br).unwrap().is_empty(), "nothing learnt");

    // A packet-out may go to the controller too.
    let events = sw.events();
    sw.packet_out(
        br,
        LOCAL_PORT,
        f.clone(),
        vec![Action::Controller { max_len: 20 }],
    )
    .unwrap();
    let p = packet_in(&events);
    assert_eq!((p.in_port, p.reason), (LOCAL_PORT, PacketInReason::Action));
    assert_eq!(p.data, f);

    // Refused: no such bridge, no such port, too short, too long.
    assert!(matches!(
        sw.packet_out("nobr", 1, f.clone(), vec![]),
        Err(SwitchError::NoSuchBridge(_))
    ));
    assert!(matches!(
        sw.packet_out(br, 77, f.clone(), vec![]),
        Err(SwitchError::NoSuchPort(_))
    ));
    let e = sw.packet_out(br, 1, vec![0; 13], vec![]).unwrap_err();
    assert!(matches!(e, SwitchError::BadPacketOut(_)), "{e}");
    assert!(e.to_string().contains("Ethernet header"), "{e}");
    let e = sw
        .packet_out(br, 1, vec![0; 1 << 20], vec![Action::Flood])
        .unwrap_err();
    assert!(e.to_string().contains("does not fit"), "{e}");
}

fn flow_removed(events: &Receiver<SwitchEvent>) -> switch_core::FlowRemoved {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match events.recv_timeout(left) {
            Ok(SwitchEvent::FlowRemoved(r)) => return r,
            Ok(SwitchEvent::PacketIn(_)) => continue,
            Err(e) => panic!("no flow-removed within {WAIT:?}: {e}"),
        }
    }
}

#[test]
fn flow_removed_on_delete_and_on_expiry() {
    let br = "ofc4";
    let sw = setup(br);
    let events = sw.events();
    rules(
        &sw,
        br,
        &[
            "priority=10,cookie=0x5,send_flow_rem,in_port=1,actions=output:2",
            "priority=10,cookie=0x6,in_port=2,actions=output:1",
        ],
    );
    assert!(sw.flows(br).unwrap().iter().any(|r| r.send_flow_rem));
    sw.dummy_receive(br, "p1", vec![frame(9, 1, 1, 60), frame(9, 1, 2, 60)])
        .unwrap();
    assert_eq!(take(&sw, br, "p2", 2).len(), 2);
    let gone = sw.del_flows(br, &RuleFilter::all(), false).unwrap();
    assert_eq!(gone.len(), 2);
    let r = flow_removed(&events);
    assert_eq!(r.reason, FlowRemovedReason::Delete);
    assert_eq!((&*r.bridge, r.rule.cookie), (br, 0x5));
    assert_eq!((r.packets, r.bytes), (2, 120));
    // Only the rule that asked for it.
    assert!(events.recv_timeout(Duration::from_millis(100)).is_err());

    // Replacing a rule by an identical add is not a removal.
    rules(
        &sw,
        br,
        &["priority=3,send_flow_rem,in_port=3,actions=drop"],
    );
    sw.add_flow(br, spec("priority=3,send_flow_rem,in_port=3,actions=drop"))
        .unwrap();
    assert!(events.recv_timeout(Duration::from_millis(100)).is_err());

    // Expiry: idle and hard, each told with its reason.
    sw.add_flows(
        br,
        vec![
            spec("priority=20,cookie=0x10,idle_timeout=1,send_flow_rem,in_port=1,actions=drop"),
            spec("priority=20,cookie=0x20,hard_timeout=1,send_flow_rem,in_port=2,actions=drop"),
            spec("priority=20,cookie=0x30,hard_timeout=1,in_port=3,actions=drop"),
        ],
    )
    .unwrap();
    let t0 = Instant::now();
    let mut got: Vec<(u64, FlowRemovedReason)> = (0..2)
        .map(|_| {
            let r = flow_removed(&events);
            assert!(r.duration_ms >= 1000, "{r:?}");
            (r.rule.cookie, r.reason)
        })
        .collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(
        got,
        vec![
            (0x10, FlowRemovedReason::IdleTimeout),
            (0x20, FlowRemovedReason::HardTimeout)
        ]
    );
    assert!(t0.elapsed() >= Duration::from_millis(900));
    assert!(events.recv_timeout(Duration::from_millis(700)).is_err());
    // The rule without the flag expired silently; the permanent one stays.
    assert_eq!(sw.n_flows(br).unwrap(), 1);
}

#[test]
fn a_full_event_queue_counts_lost_packet_ins_and_blocks_nothing() {
    let br = "ofc5";
    let sw = setup(br);
    // Nobody reads the events.
    let _events = sw.events();
    rules(&sw, br, &["priority=10,in_port=1,actions=controller:64"]);
    let total = switch_core::events::EVENT_QUEUE + 500;
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while sent < total && Instant::now() < deadline {
        let n = (total - sent).min(256);
        let frames: Vec<Vec<u8>> = (0..n).map(|i| frame(9, 1, i as u8, 60)).collect();
        match sw.dummy_receive(br, "p1", frames) {
            Ok(_) => sent += n,
            Err(SwitchError::DummyFull(..)) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(sent, total);
    let lost = || -> u64 {
        sw.pmd_stats()
            .iter()
            .map(|s| s.drops[DropReason::ControllerQueue as usize])
            .sum()
    };
    let deadline = Instant::now() + WAIT;
    while lost() < 500 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(lost(), 500);
    assert_eq!(_events.len(), switch_core::events::EVENT_QUEUE);
    // The PMDs still forward: a rule change and a packet go through.
    rules(&sw, br, &["priority=10,in_port=1,actions=output:2"]);
    let f = frame(9, 1, 1, 60);
    sw.dummy_receive(br, "p1", vec![f.clone()]).unwrap();
    assert_eq!(take(&sw, br, "p2", 1), vec![f]);
    let port_drops = sw.port_drops(br).unwrap();
    assert_eq!(port_drops[&1][DropReason::ControllerQueue as usize], 500);
}
