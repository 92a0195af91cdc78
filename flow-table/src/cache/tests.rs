//! The burst lookups of [`FlowCache`]: the shortcuts for runs of one flow, and one count per
//! decision whichever way it was reached.

use super::*;
use crate::actions::Action;
use crate::key::ethertype;
use crate::matches::Match;
use crate::rule::RuleSpec;
use crate::tables::RuleTables;
use crate::upcall::translate;

/// Rules giving two megaflow masks: UDP port 1 (tp_dst in the mask), and everything else
/// (which also consulted the second rule's tp_src).
fn tables() -> RuleTables {
    let udp = Match::any().eth_type(ethertype::IPV4).nw_proto(17);
    let mut t = RuleTables::new();
    t.add(RuleSpec::new(20, udp.tp_dst(1), vec![Action::Output(2)]), 0)
        .unwrap();
    t.add(RuleSpec::new(10, udp.tp_src(7), vec![Action::Output(3)]), 0)
        .unwrap();
    t
}

fn key(tp_src: u16, tp_dst: u16) -> FlowKey {
    let mut k = FlowKey::ZERO;
    k.in_port = 1;
    k.eth_type = ethertype::IPV4;
    k.nw_proto = 17;
    k.tp_src = tp_src;
    k.tp_dst = tp_dst;
    k
}

fn cache() -> FlowCache {
    FlowCache::new(CacheConfig {
        emc_insert_inv_prob: 1,
        ..CacheConfig::default()
    })
}

/// Looks `keys` up as one burst, each after the previous (as the datapath does); returns
/// where each decision came from, and the cursor as the burst left it.
fn burst_cursor(c: &mut FlowCache, t: &RuleTables, keys: &[FlowKey]) -> (Vec<Hit>, BurstCursor) {
    let emc = c.begin_burst();
    let mut cursor = BurstCursor::default();
    let mut hits = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| &keys[j]);
        let hash = if emc { k.hash() } else { 0 };
        match c.lookup_next(&mut cursor, k, prev, hash, 0, |k| translate(t, k)) {
            Decision::Cached(_, hit) => hits.push(hit),
            Decision::Uncached(_) => hits.push(Hit::Upcall),
        }
    }
    (hits, cursor)
}

fn burst(c: &mut FlowCache, t: &RuleTables, keys: &[FlowKey]) -> Vec<Hit> {
    burst_cursor(c, t, keys).0
}

fn total(s: &CacheStats) -> u64 {
    s.emc_hits + s.megaflow_hits + s.upcalls
}

#[test]
fn a_run_of_one_megaflow_is_one_search_then_the_hint() {
    let t = tables();
    let mut c = cache();
    // Packets of one megaflow that differ outside its mask.
    let (hits, cursor) = burst_cursor(&mut c, &t, &[key(1, 1), key(2, 1), key(3, 1)]);
    assert_eq!(hits, [Hit::Upcall, Hit::Megaflow, Hit::Megaflow]);
    let r = c.megaflows.iter().next().unwrap().0;
    assert_eq!(cursor.hint.map(|h| h.flow()), Some(r));
    assert_eq!(cursor.emc_repeat, None);
    assert_eq!((c.stats.upcalls, c.stats.megaflow_hits), (1, 2));
}

#[test]
fn a_repeat_of_an_emc_hit_is_answered_without_a_probe_and_counted_once() {
    let t = tables();
    let mut c = cache();
    // Two masks, so that later bursts consult the EMC.
    burst(&mut c, &t, &[key(7, 1), key(7, 2)]);
    assert_eq!(c.megaflows.n_subtables(), 2);
    // Found in the megaflow cache and entered in the EMC, then found in the EMC.
    assert_eq!(burst(&mut c, &t, &[key(7, 1)]), [Hit::Megaflow]);
    assert_eq!(burst(&mut c, &t, &[key(7, 1)]), [Hit::Emc]);
    let k = key(7, 1);
    let mut cursor = BurstCursor::default();
    let mut next = |c: &mut FlowCache, prev: Option<&FlowKey>| {
        let d = c.lookup_next(&mut cursor, &k, prev, k.hash(), 0, |k| translate(&t, k));
        match d {
            Decision::Cached(_, hit) => hit,
            Decision::Uncached(_) => panic!("uncached"),
        }
    };
    assert!(c.begin_burst());
    assert_eq!(next(&mut c, None), Hit::Emc);
    // With the EMC emptied, a repeat of the previous packet's key is still an EMC hit:
    // answered from the previous decision, the EMC not probed.
    c.emc.clear();
    assert_eq!(next(&mut c, Some(&k)), Hit::Emc);
    // Without a previous key (that packet was not looked up) there is no repeat: the
    // megaflow hint answers.
    assert_eq!(next(&mut c, None), Hit::Megaflow);
    assert_eq!(c.stats.emc_hits, 3);
    // Every lookup counted once, whichever way it was answered.
    assert_eq!(total(&c.stats), 2 + 1 + 1 + 3);
}

#[test]
fn each_decision_is_counted_once() {
    let t = tables();
    let mut c = cache();
    let mut n = 0;
    for keys in [
        vec![key(7, 1), key(7, 2)],
        vec![key(7, 1), key(7, 1), key(8, 1), key(7, 2), key(7, 2)],
        vec![key(7, 2), key(7, 1), key(7, 1), key(7, 1)],
    ] {
        n += keys.len() as u64;
        burst(&mut c, &t, &keys);
    }
    assert_eq!(total(&c.stats), n);
    assert_eq!(c.stats.upcalls, 2);
}

#[test]
fn a_new_cursor_has_nothing_to_reuse() {
    let t = tables();
    let mut c = cache();
    burst(&mut c, &t, &[key(7, 1), key(7, 2)]);
    burst(&mut c, &t, &[key(7, 1)]);
    let (hits, cursor) = burst_cursor(&mut c, &t, &[key(7, 1), key(7, 1)]);
    assert_eq!(hits, [Hit::Emc, Hit::Emc]);
    assert!(cursor.hint.is_some() && cursor.emc_repeat.is_some());
    let fresh = BurstCursor::default();
    assert!(fresh.hint.is_none() && fresh.emc_repeat.is_none());
}

#[test]
fn the_flow_limit_keeps_the_hint_and_counts_the_loss() {
    let t = tables();
    let mut c = FlowCache::new(CacheConfig {
        flow_limit: 1,
        ..CacheConfig::default()
    });
    let hits = burst(&mut c, &t, &[key(1, 1), key(7, 2), key(2, 1)]);
    // The second megaflow did not fit; the third packet still hits the first one's hint.
    assert_eq!(hits, [Hit::Upcall, Hit::Upcall, Hit::Megaflow]);
    assert_eq!(
        (c.stats.upcalls, c.stats.lost, c.stats.megaflow_hits),
        (2, 1, 1)
    );
}
