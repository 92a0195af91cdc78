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
mod tests;
