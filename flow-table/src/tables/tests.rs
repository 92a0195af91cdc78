use super::*;
use crate::key::{ethertype, ipproto};
use crate::miss::MissConfig;
use std::net::Ipv4Addr;

fn ip() -> Match {
    Match::any().eth_type(ethertype::IPV4)
}

fn setup() -> RuleTables {
    let mut t = RuleTables::new();
    t.add(RuleSpec::new(0, Match::any(), vec![Action::Normal]), 0)
        .unwrap();
    let mut s = RuleSpec::new(
        10,
        ip().nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8),
        vec![Action::Output(2)],
    );
    s.cookie = 0xa;
    t.add(s, 0).unwrap();
    let mut s = RuleSpec::new(
        20,
        ip().nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8)
            .nw_proto(ipproto::TCP)
            .tp_dst(80),
        vec![Action::Output(3)],
    );
    s.cookie = 0xb;
    t.add(s, 0).unwrap();
    t.add(
        RuleSpec::new(5, Match::any().in_port(1), vec![Action::Output(4)]).in_table(1),
        0,
    )
    .unwrap();
    t
}

#[test]
fn non_strict_delete_removes_every_covered_rule() {
    let mut t = setup();
    let gone = t.delete(&RuleFilter::matching(ip(), 0), false);
    assert_eq!(gone.len(), 2);
    assert_eq!(t.len(), 2);
}

#[test]
fn strict_delete_needs_exact_match_and_priority() {
    let mut t = setup();
    let m = ip().nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8);
    assert!(t.delete(&RuleFilter::matching(m, 11), true).is_empty());
    assert!(t.delete(&RuleFilter::matching(ip(), 10), true).is_empty());
    assert_eq!(t.delete(&RuleFilter::matching(m, 10), true).len(), 1);
    assert_eq!(t.len(), 3);
}

#[test]
fn delete_by_cookie_and_table() {
    let mut t = setup();
    assert_eq!(t.delete(&RuleFilter::cookie(0xb), false).len(), 1);
    let f = RuleFilter {
        table: Some(1),
        ..RuleFilter::all()
    };
    assert_eq!(t.delete(&f, false).len(), 1);
    assert_eq!(t.len(), 2);
    assert_eq!(t.delete(&RuleFilter::all(), false).len(), 2);
    assert!(t.is_empty());
}

#[test]
fn modify_keeps_counters_and_changes_actions() {
    let mut t = setup();
    let m = ip().nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8);
    let stats = t.stats(0, &m, 10).unwrap();
    stats.credit(3, 300, 1);
    let ch = t
        .modify(&RuleFilter::cookie(0xa), &[Action::Output(9)], false)
        .unwrap();
    assert_eq!(ch.len(), 1);
    let r = t.table(0).unwrap().find_strict(&m, 10).unwrap();
    assert_eq!(*r.actions, [Action::Output(9)]);
    assert_eq!(r.stats.packets(), 3);
    // out_port filter.
    let f = RuleFilter {
        out_port: Some(9),
        ..RuleFilter::all()
    };
    assert_eq!(t.delete(&f, false).len(), 1);
}

#[test]
fn add_replaces_and_resets_counters() {
    let mut t = setup();
    let m = ip().nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8);
    t.stats(0, &m, 10).unwrap().credit(1, 1, 1);
    let g = t.generation();
    t.add(RuleSpec::new(10, m, vec![Action::Drop]), 5).unwrap();
    assert!(t.generation() > g);
    assert_eq!(t.len(), 4);
    assert_eq!(t.stats(0, &m, 10).unwrap().packets(), 0);
}

#[test]
fn bad_flow_mods_are_refused_with_a_reason() {
    let mut t = setup();
    let e = t
        .add(RuleSpec::new(1, Match::any().tp_dst(80), vec![]), 0)
        .unwrap_err();
    assert!(e.to_string().contains("tp_dst requires"), "{e}");
    let e = t
        .add(
            RuleSpec::new(1, Match::any(), vec![Action::GotoTable(1)]).in_table(1),
            0,
        )
        .unwrap_err();
    assert_eq!(e, FlowModError::BadGoto { from: 1, to: 1 });
    assert!(matches!(
        t.add(RuleSpec::new(1, Match::any(), vec![]).in_table(255), 0),
        Err(FlowModError::BadTable(255))
    ));
    t.set_max_rules(4);
    assert!(matches!(
        t.add(RuleSpec::new(99, Match::any(), vec![]), 0),
        Err(FlowModError::TooManyRules(4))
    ));
    // Replacing an existing rule is still allowed at the cap.
    assert!(t.add(RuleSpec::new(0, Match::any(), vec![]), 0).is_ok());
}

#[test]
fn expiry() {
    let mut t = RuleTables::new();
    let mut s = RuleSpec::new(1, Match::any().in_port(1), vec![]);
    s.hard_timeout = 1;
    t.add(s, 1000).unwrap();
    assert!(t.expire(1999).is_empty());
    assert_eq!(t.expire(2000).len(), 1);
    assert!(t.is_empty());
}

#[test]
fn rules_are_listed_in_table_priority_order() {
    let t = setup();
    let prios: Vec<(u8, u16)> = t.rules().iter().map(|r| (r.table, r.priority)).collect();
    assert_eq!(prios, vec![(0, 20), (0, 10), (0, 0), (1, 5)]);
}

/// What a reader of a snapshot sees: every rule with its actions, and the answers of a few
/// lookups.
fn view(t: &RuleTables) -> (Vec<String>, Vec<Option<u64>>) {
    let rules = t.rules().iter().map(|r| r.to_string()).collect();
    let mut k = FlowKey::ZERO;
    k.eth_type = ethertype::IPV4;
    let answers = [0x0a00_0001u32, 0x0a01_0203, 0x0b00_0001]
        .iter()
        .map(|&dst| {
            k.nw_dst = dst;
            t.lookup(0, &k, &mut FlowMask::default()).map(|r| r.seq)
        })
        .collect();
    (rules, answers)
}

fn host(i: u32) -> Match {
    ip().nw_dst(Ipv4Addr::from(0x0a00_0000 + i), 32)
}

#[test]
fn a_clone_taken_before_changes_does_not_see_them() {
    let mut t = setup();
    for i in 0..2000 {
        let mut s = RuleSpec::new(30, host(i), vec![Action::Output(i)]);
        s.hard_timeout = if i % 2 == 0 { 5 } else { 0 };
        t.add(s, 0).unwrap();
    }
    let snapshot = t.clone();
    let before = view(&snapshot);
    let (len, gen) = (snapshot.len(), snapshot.generation());

    t.add(RuleSpec::new(40, host(1), vec![Action::Drop]), 0)
        .unwrap();
    t.add(RuleSpec::new(30, host(3), vec![Action::Drop]), 0)
        .unwrap();
    assert_eq!(t.delete(&RuleFilter::matching(host(5), 30), true).len(), 1);
    let m = ip().nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8);
    assert_eq!(
        t.modify(&RuleFilter::matching(m, 10), &[Action::Flood], true)
            .unwrap()
            .len(),
        1
    );
    assert_eq!(t.expire(5_000).len(), 1000);
    assert_eq!(t.len(), len + 1 - 1 - 1000);
    assert_ne!(view(&t), before);

    assert_eq!(view(&snapshot), before);
    assert_eq!(snapshot.len(), len);
    assert_eq!(snapshot.generation(), gen);
    assert!(snapshot.has_timeouts());
    for i in 0..2000 {
        let r = snapshot
            .table(0)
            .unwrap()
            .find_strict(&host(i), 30)
            .unwrap();
        assert_eq!(*r.actions, [Action::Output(i)]);
    }
    assert!(snapshot
        .table(0)
        .unwrap()
        .find_strict(&host(1), 40)
        .is_none());
    let r = snapshot.table(0).unwrap().find_strict(&m, 10).unwrap();
    assert_eq!(*r.actions, [Action::Output(2)]);
}

#[test]
fn expire_removes_exactly_the_expired_rules_and_has_timeouts_follows() {
    let mut t = setup();
    assert!(!t.has_timeouts(), "setup has no timed rule");
    let timed = |i: u32, idle: u16, hard: u16| {
        let mut s = RuleSpec::new(30, host(i), vec![Action::Output(1)]);
        s.idle_timeout = idle;
        s.hard_timeout = hard;
        s
    };
    t.add(timed(1, 0, 2), 1_000).unwrap(); // expires at 3 000
    t.add(timed(2, 1, 0), 1_000).unwrap(); // idle: 2 000 unless hit
    t.add(timed(3, 0, 10), 1_000).unwrap(); // 11 000
    t.add(timed(4, 0, 0), 1_000).unwrap(); // never
    assert!(t.has_timeouts());
    t.stats(0, &host(2), 30).unwrap().credit(1, 60, 2_500);

    assert!(t.expire(2_999).is_empty());
    let gone: Vec<Match> = t.expire(3_500).iter().map(|r| r.r#match).collect();
    assert_eq!(gone, vec![host(1), host(2)]);
    assert_eq!(t.len(), 4 + 2);
    assert!(t.has_timeouts());

    // A modified rule keeps its timeout; its replacement in the index must not leave the
    // old version behind.
    t.modify(&RuleFilter::matching(host(3), 30), &[Action::Drop], true)
        .unwrap();
    let gone = t.expire(11_000);
    assert_eq!(gone.len(), 1);
    assert_eq!(*gone[0].actions, [Action::Drop]);
    assert!(!t.has_timeouts());
    assert!(t.table(0).unwrap().find_strict(&host(4), 30).is_some());

    // Deleting or replacing a timed rule takes it out of the index.
    t.add(timed(5, 0, 1), 0).unwrap();
    t.add(timed(6, 0, 1), 0).unwrap();
    assert!(t.has_timeouts());
    t.delete(&RuleFilter::matching(host(5), 30), true);
    assert!(t.has_timeouts());
    t.add(timed(6, 0, 0), 0).unwrap();
    assert!(!t.has_timeouts(), "replaced by a rule without timeout");
    assert!(t.expire(u64::MAX / 2).is_empty());
}

#[test]
fn adding_the_same_match_and_priority_replaces_the_rule() {
    let mut t = setup();
    let m = host(7);
    t.add(RuleSpec::new(30, m, vec![Action::Output(1)]), 0)
        .unwrap();
    t.add(RuleSpec::new(31, m, vec![Action::Output(2)]), 0)
        .unwrap();
    t.stats(0, &m, 30).unwrap().credit(1, 1, 1);
    let snapshot = t.clone();
    let ch = t
        .add(RuleSpec::new(30, m, vec![Action::Output(3)]), 0)
        .unwrap();
    assert_eq!(
        ch,
        vec![RuleChange {
            table: 0,
            r#match: m
        }]
    );
    assert_eq!(t.len(), snapshot.len());
    let table = t.table(0).unwrap();
    assert_eq!(
        *table.find_strict(&m, 30).unwrap().actions,
        [Action::Output(3)]
    );
    assert_eq!(
        *table.find_strict(&m, 31).unwrap().actions,
        [Action::Output(2)]
    );
    assert_eq!(t.stats(0, &m, 30).unwrap().packets(), 0);
    // The other priority still wins lookups; the old copy still has the old rule.
    let mut k = FlowKey::ZERO;
    k.eth_type = ethertype::IPV4;
    k.nw_dst = 0x0a00_0007;
    let hit = t.lookup(0, &k, &mut FlowMask::default()).unwrap();
    assert_eq!(hit.priority, 31);
    let old = snapshot.table(0).unwrap().find_strict(&m, 30).unwrap();
    assert_eq!(*old.actions, [Action::Output(1)]);
    assert_eq!(old.stats.packets(), 1);
}

#[test]
fn strict_and_non_strict_select_differently() {
    let m = ip().nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8);
    // Strict: exact match and priority, in every table when none is named, and the cookie
    // and out_port conditions still apply.
    let mut t = setup();
    t.add(RuleSpec::new(10, m, vec![Action::Output(2)]).in_table(3), 0)
        .unwrap();
    let f = RuleFilter {
        cookie: 0xb,
        cookie_mask: u64::MAX,
        ..RuleFilter::matching(m, 10)
    };
    assert!(t.delete(&f, true).is_empty(), "cookie differs");
    let f = RuleFilter {
        out_port: Some(3),
        ..RuleFilter::matching(m, 10)
    };
    assert!(t.modify(&f, &[Action::Drop], true).unwrap().is_empty());
    let gone = t.delete(&RuleFilter::matching(m, 10), true);
    assert_eq!(gone.iter().map(|r| r.table).collect::<Vec<_>>(), vec![0, 3]);
    assert_eq!(t.len(), 3);

    // Non-strict: every rule the match covers, at any priority; the more specific TCP rule
    // is covered by the /8 match, the catch-all is not.
    let mut t = setup();
    let ch = t
        .modify(&RuleFilter::matching(m, 0), &[Action::Drop], false)
        .unwrap();
    assert_eq!(ch.len(), 2);
    let ch = t
        .modify(&RuleFilter::matching(m, 10), &[Action::Drop], true)
        .unwrap();
    assert_eq!(ch.len(), 1);
    let f = RuleFilter {
        table: Some(0),
        ..RuleFilter::matching(m, 0)
    };
    assert_eq!(t.delete(&f, false).len(), 2);
    assert_eq!(t.len(), 2);
    assert!(t
        .delete(
            &RuleFilter {
                table: Some(9),
                ..RuleFilter::all()
            },
            false
        )
        .is_empty());
}

/// A rule drawn from a small space, so that strict filters often hit: (table, port, priority,
/// cookie, output, hard timeout).
type Drawn = (u8, u32, u16, u64, u32, u16);

fn drawn_spec((table, port, priority, cookie, out, hard): Drawn) -> RuleSpec {
    let mut s = RuleSpec::new(
        priority,
        Match::any().in_port(port),
        vec![Action::Output(out)],
    )
    .in_table(table);
    s.cookie = cookie;
    s.hard_timeout = hard;
    s
}

proptest::proptest! {
    /// A strict delete probes for one rule instead of scanning: it must remove exactly what a
    /// scan with the filter would, and leave the counts and the timeout index right.
    #[test]
    fn strict_delete_selects_what_a_scan_selects(
        rules in proptest::collection::vec(
            (0u8..3, 0u32..3, 0u16..3, 0u64..2, 0u32..3, 0u16..2), 0..30),
        filter in (proptest::option::of(0u8..3), 0u32..3, 0u16..3,
            proptest::option::of(0u64..2), proptest::option::of(0u32..3)),
    ) {
        let mut t = RuleTables::new();
        for r in rules {
            t.add(drawn_spec(r), 0).unwrap();
        }
        let (table, port, priority, cookie, out_port) = filter;
        let f = RuleFilter {
            table,
            out_port,
            cookie: cookie.unwrap_or(0),
            cookie_mask: if cookie.is_some() { u64::MAX } else { 0 },
            ..RuleFilter::matching(Match::any().in_port(port), priority)
        };
        let want: Vec<u64> = t
            .rules()
            .iter()
            .filter(|r| f.selects(r, true))
            .map(|r| r.seq)
            .collect();
        let before = t.clone();
        let mut gone: Vec<u64> = t.delete(&f, true).iter().map(|r| r.seq).collect();
        gone.sort_unstable();
        let mut want_sorted = want.clone();
        want_sorted.sort_unstable();
        proptest::prop_assert_eq!(gone, want_sorted);
        proptest::prop_assert_eq!(t.len(), before.len() - want.len());
        proptest::prop_assert_eq!(t.len(), t.rules().len());
        let timed = t.rules().iter().any(|r| r.hard_timeout != 0);
        proptest::prop_assert_eq!(t.has_timeouts(), timed);
        let n_timed = t.rules().iter().filter(|r| r.hard_timeout != 0).count();
        proptest::prop_assert_eq!(t.expire(u64::MAX / 2).len(), n_timed);
        proptest::prop_assert!(!t.has_timeouts());
        proptest::prop_assert_eq!(before.len(), before.rules().len());
    }
}

#[test]
fn send_flow_rem_is_kept_by_a_modify_and_set_by_an_add() {
    let mut t = RuleTables::new();
    let flagged = RuleSpec {
        priority: 5,
        r#match: ip(),
        actions: vec![Action::Output(1)],
        send_flow_rem: true,
        ..Default::default()
    };
    t.add(flagged, 0).unwrap();
    t.add(RuleSpec::new(6, ip(), vec![Action::Output(1)]), 0)
        .unwrap();
    let changed = t
        .modify(&RuleFilter::all(), &[Action::Output(2)], false)
        .unwrap();
    assert_eq!(changed.len(), 2);
    let flags: Vec<(u16, bool)> = t
        .rules()
        .iter()
        .map(|r| (r.priority, r.send_flow_rem))
        .collect();
    assert_eq!(flags, vec![(6, false), (5, true)]);
    // out_port=CONTROLLER selects the rules with a controller action.
    t.add(
        RuleSpec::new(7, ip(), vec![Action::Controller { max_len: 64 }]),
        0,
    )
    .unwrap();
    let f = RuleFilter {
        out_port: Some(crate::flow_syntax::OFPP_CONTROLLER),
        ..RuleFilter::all()
    };
    assert_eq!(t.delete(&f, false).len(), 1);
    assert_eq!(t.len(), 2);
    // The miss settings travel with the tables and survive rule changes.
    let miss = MissConfig {
        fail_open: false,
        controller: Some(64),
    };
    assert_eq!(t.set_miss(miss).len(), 1);
    t.delete(&RuleFilter::all(), false);
    assert_eq!(t.clone().miss(), miss);
}
