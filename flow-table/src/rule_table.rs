//! One OpenFlow table: rules classified by tuple space search, with a lookup that records every
//! bit of the key it consulted.
//!
//! Rules with the same mask share a subtable: a hash map from masked key to the rules with that
//! exact match (one per priority). Subtables are visited in order of their highest priority, and
//! the walk stops once no remaining subtable can beat the best rule found. Every subtable visited
//! adds its whole mask to the consulted set: the hash probe read all those bits, and a packet
//! differing in any of them could have found a different rule there.
//!
//! The subtables' maps are persistent ([`imbl`]'s HAMT), so that a table can be cloned for
//! every flow mod in O(subtables) and changed in O(log n) per rule; see `subtable.rs` for
//! the cost this has on lookups.

use std::sync::Arc;

use crate::key::{FlowKey, FlowMask};
use crate::matches::Match;
use crate::rule::Rule;

mod slot;
mod subtable;

use subtable::Subtable;

/// The rules of one table.
///
/// Cloning costs O(number of subtables), whatever the number of rules; the clone and the
/// original then change independently (each change copies only what it touches).
#[derive(Clone, Debug, Default)]
pub struct RuleTable {
    /// Ordered by `max_priority`, highest first.
    subtables: Vec<Subtable>,
    n_rules: usize,
}

/// Orders rules the way lookups prefer them: higher priority, then older.
#[inline]
fn beats(a: &Rule, b: &Rule) -> bool {
    (a.priority, std::cmp::Reverse(a.seq)) > (b.priority, std::cmp::Reverse(b.seq))
}

impl RuleTable {
    /// Number of rules.
    pub fn len(&self) -> usize {
        self.n_rules
    }

    /// True when the table has no rule.
    pub fn is_empty(&self) -> bool {
        self.n_rules == 0
    }

    /// Number of distinct masks.
    pub fn n_subtables(&self) -> usize {
        self.subtables.len()
    }

    fn resort(&mut self) {
        self.subtables
            .sort_by_key(|s| std::cmp::Reverse(s.max_priority));
    }

    fn subtable(&self, mask: &FlowMask) -> Option<usize> {
        self.subtables.iter().position(|s| s.mask == *mask)
    }

    /// Inserts `rule`, returning the rule it replaces (same match and priority), if any.
    pub fn insert(&mut self, rule: Arc<Rule>) -> Option<Arc<Rule>> {
        let mask = *rule.r#match.mask();
        let (idx, new) = match self.subtable(&mask) {
            Some(i) => (i, false),
            None => {
                self.subtables.push(Subtable::new(mask));
                (self.subtables.len() - 1, true)
            }
        };
        let st = &mut self.subtables[idx];
        let max = st.max_priority;
        let replaced = st.insert(rule);
        if replaced.is_none() {
            self.n_rules += 1;
        }
        if new || st.max_priority != max {
            self.resort();
        }
        replaced
    }

    /// The rule with exactly this match and priority.
    pub fn find_strict(&self, m: &Match, priority: u16) -> Option<&Arc<Rule>> {
        self.subtables[self.subtable(m.mask())?].find(m.key(), priority)
    }

    /// Removes the rule with exactly this match and priority.
    pub fn remove(&mut self, m: &Match, priority: u16) -> Option<Arc<Rule>> {
        let idx = self.subtable(m.mask())?;
        let st = &mut self.subtables[idx];
        let max = st.max_priority;
        let removed = st.remove(m.key(), priority)?;
        self.n_rules -= 1;
        if st.is_empty() {
            self.subtables.remove(idx);
        } else if st.max_priority != max {
            self.resort();
        }
        Some(removed)
    }

    /// Replaces an installed rule (same match and priority) by `rule`; returns the old one.
    pub fn replace(&mut self, rule: Arc<Rule>) -> Option<Arc<Rule>> {
        let idx = self.subtable(rule.r#match.mask())?;
        let st = &mut self.subtables[idx];
        st.find(rule.r#match.key(), rule.priority)?;
        st.insert(rule)
    }

    /// Every rule, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Rule>> {
        self.subtables.iter().flat_map(Subtable::iter)
    }

    /// The highest-priority rule matching `key` (the oldest among equals). Adds to `consulted`
    /// every bit the answer depends on: any key equal to `key` on those bits gets the same rule.
    pub fn lookup(&self, key: &FlowKey, consulted: &mut FlowMask) -> Option<&Arc<Rule>> {
        let mut best: Option<&Arc<Rule>> = None;
        for st in &self.subtables {
            if best.is_some_and(|b| st.max_priority < b.priority) {
                break;
            }
            consulted.union_with(&st.mask);
            if let Some(cand) = st.top(&key.masked(&st.mask)) {
                if best.is_none_or(|b| beats(cand, b)) {
                    best = Some(cand);
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::Action;
    use crate::key::ethertype;
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
}
