use std::sync::Mutex;

use super::*;
use crate::datapath::l2::Mirror;
use crate::datapath::vlan::PortVlan;
use flow_table::{translate_with, Action, RuleSpec, RuleTables};

const A: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xa]);
const B: MacAddr = MacAddr([2, 0, 0, 0, 0, 0xb]);

fn key(in_port: u32, tci: u16, src: impl Into<MacAddr>, dst: impl Into<MacAddr>) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = in_port;
    k.eth_src = src.into();
    k.eth_dst = dst.into();
    k.vlan_tci = tci;
    k.eth_type = 0x0800;
    k
}

fn rules(actions: Vec<Action>) -> RuleTables {
    let mut t = RuleTables::new();
    t.add(RuleSpec::new(0, Match::any(), actions), 0).unwrap();
    t
}

/// Translates `k` with NORMAL (and whatever else `t` says), learning; mirrors applied.
fn run_with(
    t: &RuleTables,
    cfg: &L2Config,
    k: &FlowKey,
    macs: &Mutex<MacTable>,
) -> (Vec<DpAction>, Vec<RuleChange>, Vec<NormalNote>) {
    let mut r = BridgeResolver::new(cfg, macs, 0, true);
    let mut x = translate_with(t, k, &mut r);
    cfg.apply_mirrors(&mut x, k);
    (x.actions, r.learned, r.notes)
}

fn run(cfg: &L2Config, k: &FlowKey, macs: &Mutex<MacTable>) -> Vec<DpAction> {
    run_with(&rules(vec![Action::Normal]), cfg, k, macs).0
}

fn plain(ports: &[u32]) -> L2Config {
    L2Config {
        ports: ports.to_vec(),
        ..L2Config::default()
    }
}

fn out(p: &[u32]) -> Vec<DpAction> {
    p.iter().map(|&p| DpAction::Output(p)).collect()
}

#[test]
fn unknown_floods_by_port_number_known_forwards_and_learning_is_reported() {
    let c = plain(&[1, 2, 3]);
    let macs = Mutex::new(MacTable::default());
    let t = rules(vec![Action::Normal]);
    let (a, ch, notes) = run_with(&t, &c, &key(1, 0, A, B), &macs);
    assert_eq!(a, out(&[2, 3]));
    assert_eq!(
        notes,
        vec![NormalNote::Flood {
            vlan: 0,
            ports: vec![2, 3]
        }]
    );
    assert_eq!(ch.len(), 1, "A was learned");
    assert!(
        ch[0].r#match.matches(&key(2, 0, B, A)),
        "flows towards A go"
    );
    assert!(!ch[0].r#match.matches(&key(2, 0, B, B)));
    let (a, ch, _) = run_with(&t, &c, &key(2, 0, B, A), &macs);
    assert_eq!(a, out(&[1]));
    assert_eq!(ch.len(), 1, "B was learned");
    let (a, ch, _) = run_with(&t, &c, &key(1, 0, A, B), &macs);
    assert_eq!(a, out(&[2]));
    assert!(ch.is_empty(), "nothing new");
}

#[test]
fn never_back_out_of_the_ingress_port_and_broadcast_floods() {
    let c = plain(&[1, 2]);
    let macs = Mutex::new(MacTable::default());
    macs.lock().unwrap().learn(0, B, 1, 0);
    assert_eq!(run(&c, &key(1, 0, A, B), &macs), vec![]);
    assert_eq!(run(&c, &key(1, 0, A, [0xff; 6]), &macs), out(&[2]));
}

#[test]
fn reserved_destinations_are_dropped_also_after_a_rewrite() {
    let c = plain(&[1, 2, 3]);
    let macs = Mutex::new(MacTable::default());
    for last in [0x00, 0x02, 0x0e, 0x0f] {
        let d = [0x01, 0x80, 0xc2, 0, 0, last];
        let (a, _, notes) = run_with(&rules(vec![Action::Normal]), &c, &key(1, 0, A, d), &macs);
        assert_eq!((a, notes), (vec![], vec![NormalNote::Reserved]));
    }
    // 01:80:c2:00:00:10 is not reserved.
    assert_eq!(
        run(&c, &key(1, 0, A, [0x01, 0x80, 0xc2, 0, 0, 0x10]), &macs),
        out(&[2, 3])
    );
    // NORMAL sees the destination a rule wrote.
    let t = rules(vec![
        Action::Set(SetField::EthDst(MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]))),
        Action::Normal,
    ]);
    assert!(run_with(&t, &c, &key(1, 0, A, B), &macs).0.is_empty());
}

#[test]
fn a_priority_tag_stays_on_trunks_only_with_a_priority() {
    let mut c = plain(&[1, 2, 3]);
    c.vlans
        .insert(3, PortVlan::parse(Some("0"), None, None).unwrap());
    let macs = Mutex::new(MacTable::default());
    // Priority 0: the tag carries nothing and goes.
    let a = run(&c, &key(1, VLAN_PRESENT, A, B), &macs);
    assert_eq!(
        a,
        vec![DpAction::PopVlan, DpAction::Output(2), DpAction::Output(3)]
    );
    // Priority 5: kept on the trunk 2, removed for the access port 3 (as OVS).
    let a = run(&c, &key(1, VLAN_PRESENT | (5 << 13), A, B), &macs);
    assert_eq!(
        a,
        vec![
            DpAction::PopVlan,
            DpAction::Output(3),
            DpAction::PushVlan {
                tpid: 0x8100,
                tci: 5 << 13
            },
            DpAction::Output(2)
        ]
    );
    // A native port does not carry VLAN 0.
    c.vlans.insert(
        3,
        PortVlan::parse(Some("5"), None, Some("native-untagged")).unwrap(),
    );
    let a = run(&c, &key(1, 0, A, B), &macs);
    assert_eq!(a, vec![DpAction::Output(2)]);
    // A real VLAN stays tagged on a port without settings (and the native port's trunk).
    let a = run(&c, &key(1, VLAN_PRESENT | 7, A, B), &macs);
    assert_eq!(a, out(&[2, 3]));
}

#[test]
fn actions_after_normal_see_the_frame_as_it_was() {
    let c = {
        let mut c = plain(&[1, 2, 3]);
        c.vlans
            .insert(2, PortVlan::parse(Some("10"), None, None).unwrap());
        c.vlans
            .insert(1, PortVlan::parse(Some("10"), None, None).unwrap());
        c
    };
    let macs = Mutex::new(MacTable::default());
    // Untagged from access port 1 (VLAN 10): to 2 untagged, to trunk 3 tagged 10; then
    // output:3 again must carry the frame as received (untagged).
    let t = rules(vec![Action::Normal, Action::Output(3)]);
    let (a, _, _) = run_with(&t, &c, &key(1, 0, A, B), &macs);
    assert_eq!(
        a,
        vec![
            DpAction::Output(2),
            DpAction::PushVlan {
                tpid: 0x8100,
                tci: 10
            },
            DpAction::Output(3),
            DpAction::PopVlan,
            DpAction::Output(3),
        ]
    );
    // Alone, the restoring pop is trimmed.
    assert_eq!(
        run(&c, &key(1, 0, A, B), &macs),
        vec![
            DpAction::Output(2),
            DpAction::PushVlan {
                tpid: 0x8100,
                tci: 10
            },
            DpAction::Output(3)
        ]
    );
}

#[test]
fn flood_action_goes_to_every_other_port_by_number() {
    let mut c = plain(&[1, 2, 3, 65534]);
    c.vlans
        .insert(2, PortVlan::parse(Some("10"), None, None).unwrap());
    let macs = Mutex::new(MacTable::default());
    let (a, _, _) = run_with(&rules(vec![Action::Flood]), &c, &key(2, 0, A, B), &macs);
    assert_eq!(a, out(&[1, 3, 65534]));
}

#[test]
fn an_ingress_port_that_is_not_a_port_sends_nowhere() {
    let c = plain(&[1, 2]);
    let macs = Mutex::new(MacTable::default());
    let t = rules(vec![Action::Normal]);
    let (a, _, notes) = run_with(&t, &c, &key(9, 0, A, B), &macs);
    assert_eq!((a, notes), (vec![], vec![NormalNote::NoInputPort]));
    assert!(macs.lock().unwrap().rows(0).is_empty(), "nothing learned");
}

#[test]
fn a_trace_learns_nothing() {
    let c = plain(&[1, 2]);
    let macs = Mutex::new(MacTable::default());
    let mut r = BridgeResolver::new(&c, &macs, 0, false);
    let x = translate_with(&rules(vec![Action::Normal]), &key(1, 0, A, B), &mut r);
    assert_eq!(x.actions, out(&[2]));
    assert!(r.learned.is_empty());
    // A destination equal to the source is where an upcall would just have learned it.
    let x = translate_with(&rules(vec![Action::Normal]), &key(1, 0, A, A), &mut r);
    assert!(x.actions.is_empty());
    assert_eq!(r.notes.last(), Some(&NormalNote::IngressPort));
    drop(r);
    // Unless the address is pinned elsewhere.
    macs.lock().unwrap().add_static(0, A, 2, 0);
    let mut r = BridgeResolver::new(&c, &macs, 0, false);
    let x = translate_with(&rules(vec![Action::Normal]), &key(1, 0, A, A), &mut r);
    assert_eq!(x.actions, out(&[2]));
    drop(r);
    macs.lock().unwrap().remove(0, &A);
    assert!(macs.lock().unwrap().rows(0).is_empty());
}

/// Ports 1, 2: access VLAN 10; 3: access VLAN 20; 4: trunk of 10 and 20; 5: plain.
fn vlan_cfg() -> L2Config {
    let mut c = plain(&[1, 2, 3, 4, 5]);
    let acc = |t: &str| PortVlan::parse(Some(t), None, None).unwrap();
    c.vlans.insert(1, acc("10"));
    c.vlans.insert(2, acc("10"));
    c.vlans.insert(3, acc("20"));
    c.vlans
        .insert(4, PortVlan::parse(None, Some("10,20"), None).unwrap());
    c
}

#[test]
fn vlans_learn_separately() {
    let c = plain(&[1, 2]);
    let macs = Mutex::new(MacTable::default());
    run(&c, &key(1, VLAN_PRESENT | 10, A, B), &macs);
    let m = macs.lock().unwrap();
    assert_eq!(m.lookup(10, &A, 0), Some(1));
    assert_eq!(m.lookup(0, &A, 0), None);
}

#[test]
fn flood_stays_in_the_vlan_with_the_right_tags() {
    let c = vlan_cfg();
    let macs = Mutex::new(MacTable::default());
    let a = run(&c, &key(1, 0, A, [0xff; 6]), &macs);
    assert_eq!(
        a,
        vec![
            DpAction::Output(2),
            DpAction::PushVlan {
                tpid: 0x8100,
                tci: 10
            },
            DpAction::Output(4),
            DpAction::Output(5),
        ]
    );
    assert_eq!(
        macs.lock().unwrap().lookup(10, &A, 0),
        Some(1),
        "learned in VLAN 10"
    );
    // From the trunk in VLAN 20: to port 3 untagged, to the plain port 5 tagged.
    let a = run(&c, &key(4, VLAN_PRESENT | 20, A, [0xff; 6]), &macs);
    assert_eq!(
        a,
        vec![
            DpAction::PopVlan,
            DpAction::Output(3),
            DpAction::PushVlan {
                tpid: 0x8100,
                tci: 20
            },
            DpAction::Output(5)
        ]
    );
    // VLAN 30 is not on the trunk; tagged frames on an access port are dropped.
    assert!(run(&c, &key(4, VLAN_PRESENT | 30, A, [0xff; 6]), &macs).is_empty());
    assert!(run(&c, &key(1, VLAN_PRESENT | 10, A, [0xff; 6]), &macs).is_empty());
}

#[test]
fn unicast_to_a_learned_port_and_mirrors() {
    let mut c = vlan_cfg();
    let macs = Mutex::new(MacTable::default());
    macs.lock().unwrap().learn(10, B, 4, 0);
    let push10 = DpAction::PushVlan {
        tpid: 0x8100,
        tci: 10,
    };
    assert_eq!(
        run(&c, &key(1, 0, A, B), &macs),
        vec![push10.clone(), DpAction::Output(4)]
    );
    c.mirrors.push(Mirror {
        name: "m".into(),
        select_dst: vec![4],
        output: Some(5),
        ..Mirror::default()
    });
    let a = run(&c, &key(1, 0, A, B), &macs);
    assert_eq!(
        a[0],
        DpAction::Output(5),
        "the copy goes first, as received"
    );
    // The mirror port gets the copy (port 4 is a destination) but is left out of the flood
    // itself, and what arrives on it goes nowhere.
    let a = run(&c, &key(3, 0, A, [0xff; 6]), &macs);
    assert_eq!(
        a,
        vec![
            DpAction::Output(5),
            DpAction::PushVlan {
                tpid: 0x8100,
                tci: 20
            },
            DpAction::Output(4)
        ]
    );
    assert!(run(&c, &key(5, 0, A, [0xff; 6]), &macs).is_empty());
    // A VLAN selection.
    c.mirrors[0] = Mirror {
        name: "m".into(),
        select_vlan: vec![20],
        output: Some(5),
        ..Mirror::default()
    };
    assert!(!run(&c, &key(1, 0, A, B), &macs).contains(&DpAction::Output(5)));
    assert_eq!(
        run(&c, &key(3, 0, A, [0xff; 6]), &macs)[0],
        DpAction::Output(5)
    );
}
