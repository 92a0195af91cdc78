//! The megaflow cache: lookup, install, removal, limits and targeted invalidation.

use super::*;
use crate::actions::Action;
use crate::key::ethertype;
use crate::matches::Match;
use crate::rule::RuleSpec;
use crate::tables::RuleTables;
use crate::upcall::translate;
use std::net::Ipv4Addr;

fn key(in_port: u32, dst: [u8; 4], tp_dst: u16) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = in_port;
    k.eth_type = ethertype::IPV4;
    k.nw_proto = 17;
    k.nw_dst = u32::from(Ipv4Addr::from(dst));
    k.tp_dst = tp_dst;
    k
}

fn tables() -> RuleTables {
    let ip = Match::any().eth_type(ethertype::IPV4);
    let mut t = RuleTables::new();
    t.add(RuleSpec::new(1, Match::any(), vec![Action::Output(9)]), 0)
        .unwrap();
    t.add(
        RuleSpec::new(
            10,
            ip.nw_dst(Ipv4Addr::new(10, 0, 0, 0), 8),
            vec![Action::Output(2)],
        ),
        0,
    )
    .unwrap();
    t
}

#[test]
fn insert_lookup_remove() {
    let t = tables();
    let mut c = MegaflowCache::default();
    let k = key(1, [10, 1, 2, 3], 53);
    assert!(c.lookup(&k).is_none());
    let x = translate(&t, &k);
    let r = c.insert(&k, &x, 0).unwrap();
    assert_eq!(c.len(), 1);
    // Another packet of the same megaflow (different host and port) hits it.
    let k2 = key(1, [10, 9, 9, 9], 80);
    assert_eq!(c.lookup(&k2), Some(r));
    assert_eq!(&*c.get(r).unwrap().actions, &[DpAction::Output(2)]);
    // A different in_port does not.
    assert!(c.lookup(&key(2, [10, 1, 2, 3], 53)).is_none());
    assert!(c.remove(r));
    assert!(c.get(r).is_none(), "stale references stop resolving");
    assert!(c.lookup(&k2).is_none());
    assert_eq!(c.n_subtables(), 0);
}

/// A cache holding the megaflows of two keys of port 1 that the rules tell apart: the
/// tables, the cache, the keys and their megaflows.
fn two_megaflows() -> (
    RuleTables,
    MegaflowCache,
    FlowKey,
    FlowRef,
    FlowKey,
    FlowRef,
) {
    let t = tables();
    let mut c = MegaflowCache::default();
    let a = key(1, [10, 1, 2, 3], 53);
    let ra = c.insert(&a, &translate(&t, &a), 0).unwrap();
    let other = key(1, [192, 168, 0, 1], 53);
    let ro = c.insert(&other, &translate(&t, &other), 0).unwrap();
    (t, c, a, ra, other, ro)
}

#[test]
fn matches_answers_as_lookup_does_and_stops_once_removed() {
    let (t, mut c, a, ra, other, ro) = two_megaflows();
    // Same megaflow (bits outside its mask differ): matches, as lookup finds it.
    let a2 = key(1, [10, 9, 9, 9], 80);
    assert_eq!(c.lookup(&a2), Some(ra));
    assert!(c.matches(ra, &a2));
    // A key of another megaflow, or one on another port, does not match.
    assert!(!c.matches(ra, &other));
    assert!(c.matches(ro, &other));
    assert!(!c.matches(ra, &key(2, [10, 1, 2, 3], 53)));
    assert!(!c.matches(FlowRef::NONE, &a));
    // Removed: the stale reference never matches, even when its slot is reused.
    assert!(c.remove(ra));
    assert!(!c.matches(ra, &a2));
    let rb = c.insert(&a, &translate(&t, &a), 0).unwrap();
    assert!(!c.matches(ra, &a2));
    assert!(c.matches(rb, &a2));
}

#[test]
fn a_hint_matches_as_the_cache_does() {
    let (_, mut c, a, ra, other, ro) = two_megaflows();
    let (ha, ho) = (c.hint(ra).unwrap(), c.hint(ro).unwrap());
    assert_eq!((ha.flow(), ho.flow()), (ra, ro));
    let keys = [
        a,
        other,
        key(1, [10, 9, 9, 9], 80),
        key(2, [10, 1, 2, 3], 53),
        key(1, [192, 168, 7, 7], 22),
    ];
    for k in &keys {
        assert_eq!(ha.matches(k), c.matches(ra, k), "{k:?}");
        assert_eq!(ho.matches(k), c.matches(ro, k), "{k:?}");
    }
    assert!(ha.matches(&keys[2]) && !ha.matches(&keys[1]) && !ha.matches(&keys[3]));
    assert!(c.remove(ra));
    assert!(c.hint(ra).is_none(), "no hint for a removed megaflow");
    assert!(c.hint(FlowRef::NONE).is_none());
}

#[test]
fn flow_limit() {
    let t = tables();
    let mut c = MegaflowCache::new(2);
    for p in 1..=2 {
        let k = key(p, [10, 0, 0, 1], 1);
        c.insert(&k, &translate(&t, &k), 0).unwrap();
    }
    let k = key(3, [10, 0, 0, 1], 1);
    assert_eq!(c.insert(&k, &translate(&t, &k), 0), Err(InsertError::Full));
    assert_eq!(c.len(), 2);
}

#[test]
fn targeted_invalidation_keeps_unrelated_megaflows() {
    let mut t = tables();
    let mut c = MegaflowCache::default();
    let a = key(1, [10, 1, 2, 3], 53);
    let b = key(1, [192, 168, 0, 1], 53);
    let ra = c.insert(&a, &translate(&t, &a), 0).unwrap();
    let rb = c.insert(&b, &translate(&t, &b), 0).unwrap();
    let ip = Match::any().eth_type(ethertype::IPV4);
    let ch = t
        .add(
            RuleSpec::new(20, ip.nw_dst(Ipv4Addr::new(10, 1, 0, 0), 16), vec![]),
            0,
        )
        .unwrap();
    assert_eq!(c.invalidate(&ch), 1);
    assert!(c.get(ra).is_none());
    assert!(c.get(rb).is_some());
    // Rules in a table the megaflow never consulted do not touch it.
    let ch = t
        .add(RuleSpec::new(5, Match::any(), vec![]).in_table(3), 0)
        .unwrap();
    assert_eq!(c.invalidate(&ch), 0);
}

#[test]
fn credit_counts_flow_and_rules_and_idle_expiry() {
    let t = tables();
    let mut c = MegaflowCache::default();
    let k = key(1, [10, 1, 2, 3], 53);
    let x = translate(&t, &k);
    let r = c.insert(&k, &x, 100).unwrap();
    c.credit(r, 3, 180, 200);
    assert_eq!(c.get(r).unwrap().packets, 3);
    assert_eq!(
        x.rules[0].stats.packets(),
        0,
        "rules hear of it at the next push"
    );
    c.push_stats();
    c.push_stats();
    assert_eq!(x.rules[0].stats.packets(), 3);
    assert_eq!(x.rules[0].stats.last_used_ms(), 200);
    c.credit(r, 1, 60, 300);
    assert_eq!(c.expire_idle(1_000, 1_000), 0);
    assert_eq!(c.expire_idle(1_300, 1_000), 1);
    assert!(c.is_empty());
    assert_eq!(
        x.rules[0].stats.packets(),
        4,
        "a removed megaflow pushes what it had"
    );
}

#[test]
fn slots_and_subtables_are_reused() {
    let t = tables();
    let mut c = MegaflowCache::default();
    for round in 0..3 {
        let k = key(1, [10, 1, 2, round], 53);
        let r = c.insert(&k, &translate(&t, &k), 0).unwrap();
        assert!(c.remove(r));
    }
    assert_eq!(c.slots.len(), 1);
    assert_eq!(c.subtables.len(), 1);
}
