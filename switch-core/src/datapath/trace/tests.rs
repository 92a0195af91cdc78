use super::*;
use crate::datapath::l2::L2Config;
use crate::datapath::mac_table::MacTable;
use flow_table::{RuleSpec, RuleTables};
use std::net::Ipv4Addr;
use std::sync::Arc;

fn bridge_on(specs: Vec<RuleSpec>, ports: &[u32]) -> BridgeShared {
    let mut t = RuleTables::new();
    for s in specs {
        t.add(s, 0).unwrap();
    }
    let b = BridgeShared::new(1, "br0", t, MacTable::default());
    b.l2.store(Arc::new(L2Config {
        ports: ports.to_vec(),
        ..L2Config::default()
    }));
    b
}

fn bridge(specs: Vec<RuleSpec>) -> BridgeShared {
    bridge_on(specs, &[1, 2, 3])
}

fn tcp_key() -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = 1;
    k.eth_src = [2, 0, 0, 0, 0, 1].into();
    k.eth_dst = [2, 0, 0, 0, 0, 2].into();
    k.eth_type = 0x0800;
    k.nw_proto = 6;
    k.nw_dst = u32::from(Ipv4Addr::new(10, 0, 0, 2));
    k.nw_ttl = 64;
    k.tp_dst = 80;
    k
}

fn resubmit(t: u8) -> Action {
    Action::Resubmit {
        port: None,
        table: Some(t),
    }
}

fn in_table(table: u8, priority: u16, actions: Vec<Action>) -> RuleSpec {
    RuleSpec {
        table,
        ..RuleSpec::new(priority, Match::any(), actions)
    }
}

#[test]
fn rule_chain_with_cookie_priority_megaflow_and_outputs() {
    let ip = Match::any().eth_type(0x0800);
    let mut first = RuleSpec::new(
        200,
        ip.nw_dst(Ipv4Addr::new(10, 0, 0, 2), 32),
        vec![Action::GotoTable(3)],
    );
    first.cookie = 0xabc;
    let br = bridge(vec![first, in_table(3, 5, vec![Action::Output(2)])]);
    let names = |p: u32| (p == 2).then(|| "p2".to_owned());
    let r = trace(&br, &tcp_key(), None, 0);
    assert_eq!(r.tables.len(), 2);
    let rule = r.tables[0].rule.as_ref().unwrap();
    assert_eq!((rule.priority, rule.cookie), (200, 0xabc));
    assert_eq!(r.tables[0].emitted, vec![DpAction::Output(2)]);
    assert_eq!(r.actions, vec![DpAction::Output(2)]);
    assert_eq!(r.outputs, vec![2]);
    assert_eq!(r.drop, None);
    assert!(r.megaflow.matches(&tcp_key()));
    let text = r.to_text(&names);
    assert!(text.contains("priority 200, cookie 0xabc"), "{text}");
    assert!(text.contains("goto_table:3"), "{text}");
    assert!(text.contains("     3. priority 5, cookie 0x0"), "{text}");
    assert!(text.contains("output:p2"), "{text}");
    assert!(
        text.contains("Megaflow: ip,in_port=1,nw_dst=10.0.0.2"),
        "{text}"
    );
    assert!(text.contains("Datapath actions: 2\n"), "{text}");
    assert!(text.contains("Output ports: 2 (p2)"), "{text}");
    // Nothing was counted.
    assert!(br
        .tables
        .load()
        .rules()
        .iter()
        .all(|r| r.stats.packets() == 0));
}

#[test]
fn normal_is_resolved_without_learning_and_drops_have_reasons() {
    let br = bridge(vec![RuleSpec::new(0, Match::any(), vec![Action::Normal])]);
    let r = trace(&br, &tcp_key(), None, 0);
    assert_eq!(
        r.normal,
        vec![NormalNote::Flood {
            vlan: 0,
            ports: vec![2, 3]
        }]
    );
    assert_eq!(r.outputs, vec![2, 3]);
    assert!(br.macs().rows(0).is_empty(), "a trace learns nothing");
    assert!(r.to_text(&|_| None).contains("flooding to 2, 3"));

    br.macs().learn(0, [2, 0, 0, 0, 0, 2].into(), 3, 0);
    let r = trace(&br, &tcp_key(), None, 0);
    assert_eq!(r.outputs, vec![3]);
    // The destination behind the ingress port: NORMAL has no route.
    br.macs().learn(0, [2, 0, 0, 0, 0, 2].into(), 1, 0);
    let r = trace(&br, &tcp_key(), None, 0);
    assert_eq!(
        (r.outputs.clone(), r.drop),
        (vec![], Some(DropReason::NoPort))
    );
    assert!(r.to_text(&|_| None).contains("learned on the ingress port"));

    let br = bridge(vec![RuleSpec::new(9, Match::any(), vec![Action::Drop])]);
    let r = trace(&br, &tcp_key(), None, 0);
    assert_eq!(r.drop, Some(DropReason::Policy));
    assert!(r.to_text(&|_| None).contains("Drop reason: policy"));

    let br = bridge(vec![RuleSpec::new(
        9,
        Match::any(),
        vec![Action::Output(7)],
    )]);
    let r = trace(&br, &tcp_key(), None, 0);
    assert_eq!(r.drop, Some(DropReason::NoPort));

    let r = trace(&bridge(vec![]), &tcp_key(), None, 0);
    assert!(r.tables[0].rule.is_none());
    assert!(r.to_text(&|_| None).contains(" 0. No match."));
}

/// A translation that fails after it emitted actions (a resubmit loop) used to make the trace
/// slice past the end of the cleared actions and panic.
#[test]
fn a_failed_translation_after_outputs_traces_as_a_drop() {
    let br = bridge(vec![
        RuleSpec::new(5, Match::any(), vec![Action::Output(2), resubmit(1)]),
        in_table(1, 5, vec![Action::Output(3), resubmit(1)]),
    ]);
    let r = trace(&br, &tcp_key(), None, 0);
    assert!(r.error.is_some());
    assert!(r.actions.is_empty());
    assert_eq!(r.drop, Some(DropReason::UpcallFailed));
    assert_eq!(
        r.tables[0].emitted[0],
        DpAction::Output(2),
        "what it emitted is shown"
    );
    assert!(r.to_text(&|_| None).contains("Translation failed"));
}

/// `dec_ttl` at TTL 1 in a nested resubmit ends that rule's actions only: the outputs after
/// the resubmit still happen (as in OVS).
#[test]
fn dec_ttl_failing_in_a_resubmit_ends_only_the_nested_actions() {
    let br = bridge(vec![
        RuleSpec::new(5, Match::any(), vec![resubmit(1), Action::Output(3)]),
        in_table(1, 5, vec![resubmit(2), Action::Output(9)]),
        in_table(2, 5, vec![Action::DecTtl, Action::Output(2)]),
    ]);
    let mut k = tcp_key();
    k.nw_ttl = 1;
    let r = trace(&br, &k, None, 0);
    assert_eq!(r.error, None);
    assert_eq!(r.actions, vec![DpAction::Output(9), DpAction::Output(3)]);
    assert_eq!(r.outputs, vec![3], "port 9 does not exist");
    k.nw_ttl = 2;
    let r = trace(&br, &k, None, 0);
    assert_eq!(
        r.actions,
        vec![
            DpAction::DecTtl,
            DpAction::Output(2),
            DpAction::Output(9),
            DpAction::Output(3)
        ]
    );
}

/// An untagged TCP/IPv4 frame from 02::01 to 02::02, 10.0.0.1 → 10.0.0.2, TTL 64.
fn frame() -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let mut ip = vec![
        0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    let sum = {
        let mut a: u32 = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while a > 0xffff {
            a = (a & 0xffff) + (a >> 16);
        }
        !(a as u16)
    };
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend(ip);
    f.extend([
        0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    f
}

#[test]
fn copies_are_the_frames_the_actions_make() {
    let br = bridge(vec![RuleSpec::new(
        5,
        Match::any(),
        vec![
            Action::Output(2),
            Action::PushVlan(0x8100),
            Action::Set(SetField::VlanVid(7)),
            Action::DecTtl,
            Action::Output(3),
            Action::Output(9),
        ],
    )]);
    let f = frame();
    let key = flow_table::extract(&f, 1);
    let r = trace(&br, &key, Some(&f), 0);
    let c = r.copies.as_ref().expect("a packet was given");
    assert_eq!(c.len(), 2, "the copy to the missing port 9 is dropped");
    assert_eq!(c[0], (2, f.clone()));
    let (p, tagged) = &c[1];
    assert_eq!(*p, 3);
    assert_eq!(tagged.len(), f.len() + 4);
    assert_eq!(&tagged[12..16], &[0x81, 0x00, 0x00, 0x07]);
    assert_eq!(tagged[18 + 8], 63, "TTL decremented");
    let text = r.to_text(&|_| None);
    assert!(text.contains("Sent on 3: "), "{text}");
}
