use super::*;
use crate::actions::Action;
use crate::key::ethertype;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

fn rule(priority: u16, m: Match, out: u32, seq: u64) -> Arc<Rule> {
    Arc::new(Rule {
        table: 0,
        priority,
        r#match: m,
        actions: [Action::Output(out)].into(),
        cookie: 0,
        idle_timeout: 0,
        hard_timeout: 0,
        send_flow_rem: false,
        seq,
        created_ms: 0,
        stats: Arc::default(),
    })
}

fn out(r: Option<&Arc<Rule>>) -> Option<u32> {
    r.map(|r| match r.actions[0] {
        Action::Output(p) => p,
        _ => unreachable!(),
    })
}

#[test]
fn highest_priority_wins_and_consulted_bits_are_recorded() {
    let mut t = RuleTable::default();
    let ip = Match::any().eth_type(ethertype::IPV4);
    t.insert(rule(0, Match::any(), 1, 0));
    t.insert(rule(10, ip.nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8), 2, 1));
    t.insert(rule(20, ip.nw_dst(Ipv4Addr::new(10, 1, 0, 0), 16), 3, 2));
    assert_eq!(t.len(), 3);
    assert_eq!(t.n_subtables(), 3);

    let mut k = FlowKey::ZERO;
    k.eth_type = ethertype::IPV4;
    k.nw_dst = u32::from(Ipv4Addr::new(10, 1, 2, 3));
    let mut c = FlowMask::EMPTY;
    assert_eq!(out(t.lookup(&k, &mut c)), Some(3));
    // The /16 rule matched first and nothing below priority 20 can beat it.
    assert_eq!(c.0.nw_dst, 0xffff_0000);

    k.nw_dst = u32::from(Ipv4Addr::new(10, 2, 2, 3));
    let mut c = FlowMask::EMPTY;
    assert_eq!(out(t.lookup(&k, &mut c)), Some(2));
    assert_eq!(c.0.nw_dst, 0xffff_0000, "the /16 miss must be remembered");

    k.eth_type = ethertype::ARP;
    let mut c = FlowMask::EMPTY;
    assert_eq!(out(t.lookup(&k, &mut c)), Some(1));
    assert_eq!(c.0.eth_type, 0xffff);
}

#[test]
fn equal_priority_prefers_the_older_rule() {
    let mut t = RuleTable::default();
    t.insert(rule(5, Match::any().in_port(1), 7, 9));
    t.insert(rule(5, Match::any().eth_type(ethertype::IPV4), 8, 3));
    let mut k = FlowKey::ZERO;
    k.in_port = 1;
    k.eth_type = ethertype::IPV4;
    assert_eq!(out(t.lookup(&k, &mut FlowMask::default())), Some(8));
}

#[test]
fn insert_replaces_same_match_and_priority_and_remove_cleans_up() {
    let mut t = RuleTable::default();
    let m = Match::any().in_port(4);
    assert!(t.insert(rule(5, m, 1, 0)).is_none());
    assert!(t.insert(rule(6, m, 2, 1)).is_none());
    assert_eq!(out(t.insert(rule(5, m, 3, 2)).as_ref()), Some(1));
    assert_eq!(t.len(), 2);
    assert_eq!(out(t.find_strict(&m, 5)), Some(3));
    assert!(t.remove(&m, 7).is_none());
    assert!(t.remove(&m, 6).is_some());
    assert!(t.remove(&m, 5).is_some());
    assert!(t.is_empty());
    assert_eq!(t.n_subtables(), 0);
}

#[test]
fn rules_sharing_a_match_are_kept_by_priority() {
    let mut t = RuleTable::default();
    let m = Match::any().in_port(4);
    for (p, o) in [(5, 1), (9, 2), (7, 3)] {
        t.insert(rule(p, m, o, u64::from(o)));
    }
    let mut k = FlowKey::ZERO;
    k.in_port = 4;
    assert_eq!(out(t.lookup(&k, &mut FlowMask::default())), Some(2));
    let mut prios: Vec<u16> = t.iter().map(|r| r.priority).collect();
    prios.sort_unstable();
    assert_eq!(prios, vec![5, 7, 9]);
    assert!(t.remove(&m, 9).is_some());
    assert_eq!(out(t.lookup(&k, &mut FlowMask::default())), Some(3));
    assert_eq!(out(t.replace(rule(5, m, 8, 1)).as_ref()), Some(1));
    assert!(
        t.replace(rule(6, m, 8, 1)).is_none(),
        "replace needs an installed rule"
    );
    assert_eq!(t.len(), 2);
    assert!(t.remove(&m, 7).is_some());
    assert_eq!(out(t.lookup(&k, &mut FlowMask::default())), Some(8));
}

#[test]
fn a_clone_is_independent_of_the_original() {
    let mut t = RuleTable::default();
    let host = |i: u32| {
        Match::any()
            .eth_type(ethertype::IPV4)
            .nw_dst(Ipv4Addr::from(i), 32)
    };
    for i in 0..5000 {
        t.insert(rule(10, host(i), i, u64::from(i)));
    }
    let copy = t.clone();
    for i in 0..2500 {
        assert!(t.remove(&host(i), 10).is_some());
    }
    t.insert(rule(20, Match::any(), 7, 9999));
    assert_eq!((t.len(), t.n_subtables()), (2501, 2));
    assert_eq!((copy.len(), copy.n_subtables()), (5000, 1));
    assert_eq!(copy.iter().count(), 5000);
    for i in 0..5000 {
        assert_eq!(out(copy.find_strict(&host(i), 10)), Some(i));
    }
    let mut k = FlowKey::ZERO;
    k.eth_type = ethertype::IPV4;
    k.nw_dst = 3;
    assert_eq!(out(copy.lookup(&k, &mut FlowMask::default())), Some(3));
    assert_eq!(out(t.lookup(&k, &mut FlowMask::default())), Some(7));
}

/// The test matches: three masks (port, IPv4, port and IPv4), so that rules overlap across
/// subtables and share matches within one.
fn test_match(kind: u8, port: u32) -> Match {
    match kind {
        0 => Match::any().in_port(port),
        1 => Match::any().eth_type(ethertype::IPV4),
        _ => Match::any().in_port(port).eth_type(ethertype::IPV4),
    }
}

/// (kind, port, priority) → (output port, seq).
type Model = BTreeMap<(u8, u32, u16), (u32, u64)>;

fn check(t: &RuleTable, model: &Model) -> Result<(), TestCaseError> {
    prop_assert_eq!(t.len(), model.len());
    prop_assert_eq!(t.iter().count(), model.len());
    for (&(kind, port, p), &(o, _)) in model {
        prop_assert_eq!(out(t.find_strict(&test_match(kind, port), p)), Some(o));
    }
    for port in 0..3 {
        for eth_type in [ethertype::IPV4, ethertype::ARP] {
            let mut k = FlowKey::ZERO;
            k.in_port = port;
            k.eth_type = eth_type;
            let want = model
                .iter()
                .filter(|((kind, mp, _), _)| test_match(*kind, *mp).matches(&k))
                .max_by_key(|((_, _, p), (_, seq))| (*p, std::cmp::Reverse(*seq)))
                .map(|(_, (o, _))| *o);
            prop_assert_eq!(out(t.lookup(&k, &mut FlowMask::default())), want);
        }
    }
    Ok(())
}

proptest! {
    /// Inserts, removes and replaces agree with a plain map, and a clone taken at any point
    /// keeps answering as the map did then.
    #[test]
    fn behaves_like_a_map_and_clones_are_snapshots(
        ops in proptest::collection::vec((0u8..4, 0u8..3, 0u32..3, 0u16..3), 1..60)
    ) {
        let mut t = RuleTable::default();
        let mut model = Model::new();
        let mut snapshots = Vec::new();
        for (seq, (op, kind, port, p)) in ops.into_iter().enumerate() {
            let seq = seq as u64;
            // The IPv4-only match has no port: one model key for it.
            let port = if kind == 1 { 0 } else { port };
            let m = test_match(kind, port);
            let o = seq as u32 + 100;
            match op {
                0 => {
                    let old = t.insert(rule(p, m, o, seq));
                    let want = model.insert((kind, port, p), (o, seq)).map(|(o, _)| o);
                    prop_assert_eq!(out(old.as_ref()), want);
                }
                1 => {
                    let old = t.remove(&m, p);
                    let want = model.remove(&(kind, port, p)).map(|(o, _)| o);
                    prop_assert_eq!(out(old.as_ref()), want);
                }
                2 => {
                    let kept = model.get(&(kind, port, p)).map_or(seq, |(_, s)| *s);
                    let old = t.replace(rule(p, m, o, kept));
                    let want = model.get_mut(&(kind, port, p)).map(|e| std::mem::replace(e, (o, kept)).0);
                    prop_assert_eq!(out(old.as_ref()), want);
                }
                _ => snapshots.push((t.clone(), model.clone())),
            }
            check(&t, &model)?;
        }
        for (t, model) in &snapshots {
            check(t, model)?;
        }
    }
}
