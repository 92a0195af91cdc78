use super::*;
use crate::matches::Match;
use crate::miss::MissConfig;
use crate::rule::RuleSpec;
use std::net::Ipv4Addr;

fn ip_key(in_port: u32, dst: [u8; 4], ttl: u8) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = in_port;
    k.eth_type = ethertype::IPV4;
    k.nw_proto = ipproto::UDP;
    k.nw_dst = u32::from(Ipv4Addr::from(dst));
    k.nw_ttl = ttl;
    k.tp_dst = 53;
    k
}

fn tables(specs: Vec<RuleSpec>) -> RuleTables {
    let mut t = RuleTables::new();
    for s in specs {
        t.add(s, 0).unwrap();
    }
    t
}

fn ip() -> Match {
    Match::any().eth_type(ethertype::IPV4)
}

#[test]
fn a_miss_drops_and_depends_only_on_in_port() {
    let x = translate(&RuleTables::new(), &ip_key(1, [1, 2, 3, 4], 5));
    assert!(x.actions.is_empty());
    let mut want = FlowMask::EMPTY;
    want.0.in_port = u32::MAX;
    assert_eq!(x.mask, want);
}

#[test]
fn output_to_the_ingress_port_is_skipped_unless_in_port() {
    let t = tables(vec![RuleSpec::new(
        1,
        Match::any(),
        vec![Action::Output(1), Action::Output(2), Action::InPort],
    )]);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    assert_eq!(x.actions, vec![DpAction::Output(2), DpAction::Output(1)]);
}

#[test]
fn mask_includes_higher_priority_rules_that_did_not_match() {
    let t = tables(vec![
        RuleSpec::new(
            100,
            ip().nw_proto(ipproto::TCP).tp_dst(80),
            vec![Action::Output(9)],
        ),
        RuleSpec::new(1, Match::any(), vec![Action::Output(2)]),
    ]);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    assert_eq!(x.actions, vec![DpAction::Output(2)]);
    assert_eq!(x.mask.0.tp_dst, 0xffff);
    assert_eq!(x.mask.0.nw_proto, 0xff);
    assert_eq!(x.mask.0.nw_dst, 0, "no rule reads nw_dst");
}

#[test]
fn resubmit_continues_and_goto_ends_the_rule() {
    let t = tables(vec![
        RuleSpec::new(
            1,
            Match::any(),
            vec![
                Action::Resubmit {
                    port: None,
                    table: Some(1),
                },
                Action::Output(3),
                Action::GotoTable(2),
                Action::Output(99),
            ],
        ),
        RuleSpec::new(1, Match::any(), vec![Action::Output(4)]).in_table(1),
        RuleSpec::new(1, Match::any(), vec![Action::Output(5)]).in_table(2),
    ]);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    assert_eq!(
        x.actions,
        vec![
            DpAction::Output(4),
            DpAction::Output(3),
            DpAction::Output(5)
        ]
    );
    assert_eq!(x.rules.len(), 3);
    assert_eq!(x.tables, 0b111);
    assert!(!x.tainted);
}

#[test]
fn goto_inside_a_resubmit_returns_to_the_caller() {
    let t = tables(vec![
        RuleSpec::new(
            1,
            Match::any(),
            vec![
                Action::Resubmit {
                    port: None,
                    table: Some(1),
                },
                Action::Output(7),
            ],
        ),
        RuleSpec::new(
            1,
            Match::any(),
            vec![Action::GotoTable(2), Action::Output(99)],
        )
        .in_table(1),
        RuleSpec::new(1, Match::any(), vec![Action::Output(5)]).in_table(2),
    ]);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    assert_eq!(x.actions, vec![DpAction::Output(5), DpAction::Output(7)]);
}

#[test]
fn set_field_then_lookup_reads_the_new_value_and_taints() {
    let t = tables(vec![
        RuleSpec::new(
            1,
            ip(),
            vec![
                Action::Set(SetField::Ipv4Dst(u32::from(Ipv4Addr::new(10, 9, 9, 9)))),
                Action::Resubmit {
                    port: None,
                    table: Some(1),
                },
            ],
        ),
        RuleSpec::new(
            5,
            ip().nw_dst(Ipv4Addr::new(10, 9, 9, 9), 32),
            vec![Action::Output(6)],
        )
        .in_table(1),
    ]);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    assert_eq!(
        x.actions,
        vec![
            DpAction::Set(SetField::Ipv4Dst(0x0a09_0909)),
            DpAction::Output(6)
        ]
    );
    assert!(x.tainted);
}

#[test]
fn resubmit_with_in_port_restores_it_afterwards() {
    let t = tables(vec![
        RuleSpec::new(
            1,
            Match::any().in_port(1),
            vec![
                Action::Resubmit {
                    port: Some(7),
                    table: None,
                },
                Action::Output(1),
                Action::InPort,
            ],
        ),
        RuleSpec::new(1, Match::any().in_port(7), vec![Action::Output(8)]),
    ]);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    // output:1 is the ingress port again after the resubmit, so it is skipped.
    assert_eq!(x.actions, vec![DpAction::Output(8), DpAction::Output(1)]);
    assert!(x.tainted);
}

#[test]
fn dec_ttl_stops_at_one() {
    let t = tables(vec![RuleSpec::new(
        1,
        Match::any(),
        vec![Action::Output(2), Action::DecTtl, Action::Output(3)],
    )]);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 1));
    assert_eq!(x.actions, vec![DpAction::Output(2)]);
    assert_eq!(x.mask.0.nw_ttl, 0xff);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 9));
    assert_eq!(
        x.actions,
        vec![DpAction::Output(2), DpAction::DecTtl, DpAction::Output(3)]
    );
    // Not IP: no TTL to decrement, nothing stops.
    let mut arp = FlowKey::ZERO;
    arp.eth_type = ethertype::ARP;
    let x = translate(&t, &arp);
    assert_eq!(x.actions, vec![DpAction::Output(2), DpAction::Output(3)]);
}

#[test]
fn mod_vlan_vid_pushes_a_tag_when_there_is_none() {
    let t = tables(vec![RuleSpec::new(
        1,
        Match::any(),
        vec![Action::Set(SetField::VlanVid(10)), Action::Output(2)],
    )]);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    assert_eq!(
        x.actions,
        vec![
            DpAction::PushVlan {
                tpid: ethertype::VLAN,
                tci: 10
            },
            DpAction::Output(2)
        ]
    );
    let mut tagged = ip_key(1, [1, 1, 1, 1], 5);
    tagged.vlan_tci = VLAN_PRESENT | 0x2000 | 5;
    let x = translate(&t, &tagged);
    assert_eq!(x.actions[0], DpAction::Set(SetField::VlanVid(10)));
}

#[test]
fn pop_and_push_vlan() {
    let t = tables(vec![RuleSpec::new(
        1,
        Match::any(),
        vec![
            Action::PopVlan,
            Action::PushVlan(ethertype::QINQ),
            Action::Output(2),
        ],
    )]);
    let mut k = ip_key(1, [1, 1, 1, 1], 5);
    k.vlan_tci = VLAN_PRESENT | 7;
    let x = translate(&t, &k);
    assert_eq!(
        x.actions,
        vec![
            DpAction::PopVlan,
            DpAction::PushVlan {
                tpid: ethertype::QINQ,
                tci: 0
            },
            DpAction::Output(2)
        ]
    );
    // Untagged: nothing to pop.
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    assert_eq!(x.actions.len(), 2);
}

#[test]
fn l4_rewrites_need_an_l4_header() {
    let t = tables(vec![RuleSpec::new(
        1,
        Match::any(),
        vec![Action::Set(SetField::TpDst(99)), Action::Output(2)],
    )]);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    assert_eq!(x.actions[0], DpAction::Set(SetField::TpDst(99)));
    let mut frag = ip_key(1, [1, 1, 1, 1], 5);
    frag.nw_frag = crate::key::FRAG_ANY | FRAG_LATER;
    assert_eq!(translate(&t, &frag).actions, vec![DpAction::Output(2)]);
    assert_eq!(translate(&t, &frag).mask.0.nw_frag, 0xff);
}

#[test]
fn normal_reads_the_l2_fields() {
    let t = tables(vec![RuleSpec::new(0, Match::any(), vec![Action::Normal])]);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    assert_eq!(x.actions, vec![DpAction::Normal]);
    assert_eq!(x.mask.0.eth_src, [0xff; 6]);
    assert_eq!(x.mask.0.eth_dst, [0xff; 6]);
    assert_eq!(x.mask.0.vlan_tci, 0xffff);
    assert_eq!(x.mask.0.nw_dst, 0);
}

#[test]
fn resubmit_loops_are_cut_and_drop() {
    let t = tables(vec![RuleSpec::new(
        1,
        Match::any(),
        vec![
            Action::Output(2),
            Action::Resubmit {
                port: None,
                table: None,
            },
        ],
    )]);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    assert_eq!(x.error, Some(XlateError::TooDeep));
    assert!(x.actions.is_empty());

    // Wide fan-out (each rule resubmits twice) hits the lookup limit instead.
    let fan = |t: u8| {
        RuleSpec::new(
            1,
            Match::any(),
            vec![
                Action::Resubmit {
                    port: None,
                    table: Some(t + 1),
                },
                Action::Resubmit {
                    port: None,
                    table: Some(t + 1),
                },
            ],
        )
        .in_table(t)
    };
    let t = tables((0..20).map(fan).collect());
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    assert_eq!(x.error, Some(XlateError::TooManyLookups));
}

#[test]
fn traced_translation_records_each_lookup_and_changes_nothing() {
    let mut spec = RuleSpec::new(
        100,
        ip().nw_dst(Ipv4Addr::new(10, 0, 0, 2), 32),
        vec![Action::DecTtl, Action::GotoTable(1)],
    );
    spec.cookie = 0x5;
    let t = tables(vec![
        spec,
        RuleSpec {
            table: 1,
            ..RuleSpec::new(7, Match::any(), vec![Action::Output(2)])
        },
    ]);
    let key = ip_key(1, [10, 0, 0, 2], 9);
    let (x, steps) = translate_traced(&t, &key, &mut Unresolved);
    let plain = translate(&t, &key);
    assert_eq!(x.actions, plain.actions);
    assert_eq!(x.mask, plain.mask);
    assert_eq!(x.actions, vec![DpAction::DecTtl, DpAction::Output(2)]);
    assert_eq!(steps.len(), 2);
    let r0 = steps[0].rule.as_ref().expect("table 0 matched");
    assert_eq!(
        (steps[0].table, steps[0].depth, r0.priority, r0.cookie),
        (0, 0, 100, 5)
    );
    assert_eq!(
        steps[0].emitted,
        vec![DpAction::DecTtl, DpAction::Output(2)],
        "dec_ttl and the nested output"
    );
    assert_eq!((steps[1].table, steps[1].depth), (1, 1));
    assert_eq!(steps[1].key.nw_ttl, 8, "table 1 saw the decremented TTL");
    assert_eq!(steps[1].emitted, vec![DpAction::Output(2)]);
    // No counter moved.
    assert!(t.rules().iter().all(|r| r.stats.packets() == 0));
    // A miss is a step without a rule.
    let (x, steps) = translate_traced(&t, &ip_key(1, [10, 0, 0, 3], 9), &mut Unresolved);
    assert!(x.actions.is_empty());
    assert_eq!(steps.len(), 1);
    assert!(steps[0].rule.is_none());
}

/// `resubmit(port,table)` looks up with that in_port, but the rule's actions see the packet's
/// own: an output to it is skipped and `in_port` sends back to it (as in OVS).
#[test]
fn resubmit_with_a_port_changes_the_lookup_only() {
    let t = tables(vec![
        RuleSpec::new(
            1,
            Match::any(),
            vec![Action::Resubmit {
                port: Some(2),
                table: Some(1),
            }],
        ),
        RuleSpec {
            table: 1,
            ..RuleSpec::new(
                1,
                Match::any().in_port(2),
                vec![Action::Output(1), Action::Output(2), Action::InPort],
            )
        },
    ]);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    assert_eq!(x.actions, vec![DpAction::Output(2), DpAction::Output(1)]);
}

/// A fragment's transport ports read as 0 in lookups (OVS's normal fragment handling), and
/// a megaflow that read ports is exact on the fragment bits.
#[test]
fn fragments_match_with_ports_zero() {
    let t = tables(vec![
        RuleSpec::new(
            10,
            ip().nw_proto(ipproto::UDP).tp_dst(53),
            vec![Action::Output(2)],
        ),
        RuleSpec::new(
            5,
            ip().nw_proto(ipproto::UDP).tp_dst(0),
            vec![Action::Output(3)],
        ),
    ]);
    let whole = ip_key(1, [1, 1, 1, 1], 5);
    let x = translate(&t, &whole);
    assert_eq!(x.actions, vec![DpAction::Output(2)]);
    assert_eq!(
        x.mask.0.nw_frag, 0xff,
        "the decision depends on being whole"
    );
    let mut first = whole;
    first.nw_frag = crate::key::FRAG_ANY;
    let x = translate(&t, &first);
    assert_eq!(x.actions, vec![DpAction::Output(3)]);
}

fn controller(max_len: u16, reason: PacketInReason, table: u8, cookie: u64) -> DpAction {
    DpAction::Controller {
        max_len,
        reason,
        table,
        cookie,
    }
}

#[test]
fn a_controller_action_reports_its_rule_and_the_actions_go_on() {
    let mut spec = RuleSpec::new(
        10,
        ip(),
        vec![
            Action::Controller { max_len: 64 },
            Action::Set(SetField::IpTtl(3)),
            Action::Output(2),
        ],
    )
    .in_table(0);
    spec.cookie = 0x42;
    let t = tables(vec![spec]);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    assert_eq!(
        x.actions,
        vec![
            controller(64, PacketInReason::Action, 0, 0x42),
            DpAction::Set(SetField::IpTtl(3)),
            DpAction::Output(2)
        ]
    );
    assert_eq!(x.rules.len(), 1);
    // A controller action alone is kept (not trimmed as a trailing rewrite).
    let t = tables(vec![RuleSpec::new(
        10,
        ip(),
        vec![Action::Controller { max_len: 65535 }],
    )]);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    assert_eq!(
        x.actions,
        vec![controller(65535, PacketInReason::Action, 0, 0)]
    );
}

#[test]
fn a_table_miss_entry_sends_with_reason_no_match() {
    // Priority 0 with an empty match is OpenFlow's table-miss entry; in table 1 too.
    let t = tables(vec![
        RuleSpec::new(5, ip(), vec![Action::GotoTable(1)]),
        RuleSpec::new(0, Match::any(), vec![Action::Controller { max_len: 128 }]).in_table(1),
    ]);
    let x = translate(&t, &ip_key(1, [1, 1, 1, 1], 5));
    assert_eq!(
        x.actions,
        vec![controller(128, PacketInReason::NoMatch, 1, 0)]
    );
    // Priority 0 with a match, or an empty match above priority 0, is an ordinary rule.
    for spec in [
        RuleSpec::new(0, ip(), vec![Action::Controller { max_len: 128 }]),
        RuleSpec::new(1, Match::any(), vec![Action::Controller { max_len: 128 }]),
    ] {
        let x = translate(&tables(vec![spec]), &ip_key(1, [1, 1, 1, 1], 5));
        assert_eq!(
            x.actions,
            vec![controller(128, PacketInReason::Action, 0, 0)]
        );
    }
}

#[test]
fn a_miss_goes_to_the_controller_when_the_bridge_says_so() {
    let mut t = tables(vec![
        RuleSpec::new(
            5,
            ip().nw_dst(Ipv4Addr::new(9, 9, 9, 9), 32),
            vec![Action::GotoTable(2)],
        ),
        RuleSpec::new(
            5,
            ip().nw_dst(Ipv4Addr::new(8, 8, 8, 8), 32),
            vec![
                Action::Resubmit {
                    port: None,
                    table: Some(3),
                },
                Action::Output(4),
            ],
        ),
    ]);
    let key = ip_key(1, [1, 1, 1, 1], 5);
    assert!(translate(&t, &key).actions.is_empty(), "dropped by default");
    let changes = t.set_miss(MissConfig {
        fail_open: false,
        controller: Some(128),
    });
    assert_eq!(changes.len(), 1, "the caches must hear of it");
    assert!(t
        .set_miss(MissConfig {
            fail_open: false,
            controller: Some(128)
        })
        .is_empty());
    let x = translate(&t, &key);
    assert_eq!(
        x.actions,
        vec![controller(128, PacketInReason::NoMatch, 0, u64::MAX)]
    );
    assert!(x.rules.is_empty());
    // A miss after goto_table too, in the table missed.
    let x = translate(&t, &ip_key(1, [9, 9, 9, 9], 5));
    assert_eq!(
        x.actions,
        vec![controller(128, PacketInReason::NoMatch, 2, u64::MAX)]
    );
    // Not after resubmit: it goes on, as in OVS.
    let x = translate(&t, &ip_key(1, [8, 8, 8, 8], 5));
    assert_eq!(x.actions, vec![DpAction::Output(4)]);
}

#[test]
fn fail_open_sends_everything_to_normal_and_keeps_the_rules() {
    let mut t = tables(vec![RuleSpec::new(5, ip(), vec![Action::Output(2)])]);
    let key = ip_key(1, [1, 1, 1, 1], 5);
    t.set_miss(MissConfig {
        fail_open: true,
        controller: Some(128),
    });
    let x = translate(&t, &key);
    assert_eq!(x.actions, vec![DpAction::Normal]);
    assert!(x.normal && x.rules.is_empty());
    assert_eq!(x.tables & table_bit(0), table_bit(0));
    // The megaflow depends on what NORMAL reads, not on the rules' fields.
    assert_eq!(x.mask.0.nw_dst, 0);
    assert_eq!(x.mask.0.eth_type, 0);
    assert_eq!(t.len(), 1);
    t.set_miss(MissConfig::default());
    assert_eq!(translate(&t, &key).actions, vec![DpAction::Output(2)]);
}

#[test]
fn packet_out_actions_translate_like_a_rules() {
    let mut spec = RuleSpec::new(5, ip(), vec![Action::Output(7)]);
    spec.cookie = 9;
    let t = tables(vec![spec]);
    let key = ip_key(1, [1, 1, 1, 1], 5);
    let x = translate_actions(
        &t,
        &key,
        &[
            Action::Output(1),
            Action::Output(2),
            Action::InPort,
            Action::Controller { max_len: 10 },
            Action::Resubmit {
                port: None,
                table: Some(0),
            },
        ],
        &mut Unresolved,
    );
    assert_eq!(
        x.actions,
        vec![
            DpAction::Output(2),
            DpAction::Output(1),
            controller(10, PacketInReason::Action, 0, u64::MAX),
            DpAction::Output(7)
        ]
    );
    assert_eq!(x.rules.len(), 1, "the rule TABLE hit is credited");
    assert_eq!(x.rules[0].cookie, 9);
    let x = translate_actions(&t, &key, &[Action::Flood], &mut Unresolved);
    assert_eq!(x.actions, vec![DpAction::Flood]);
}
