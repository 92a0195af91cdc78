//! The index of rules with an idle or hard timeout, so that expiry visits only them.

use std::sync::Arc;

use imbl::OrdMap;

use crate::rule::Rule;

/// The installed rules that have a timeout, by installation number ([`Rule::seq`], which a
/// rule keeps when its actions are modified). Persistent, like the tables: a clone is O(1).
#[derive(Clone, Debug, Default)]
pub(super) struct Timeouts {
    rules: OrdMap<u64, Arc<Rule>>,
}

impl Timeouts {
    /// True when no installed rule has a timeout.
    pub(super) fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Notes that `rule` was installed (or replaces the rule of the same `seq`).
    pub(super) fn added(&mut self, rule: &Arc<Rule>) {
        if rule.idle_timeout != 0 || rule.hard_timeout != 0 {
            self.rules.insert(rule.seq, Arc::clone(rule));
        }
    }

    /// Notes that `rule` was removed.
    pub(super) fn removed(&mut self, rule: &Rule) {
        self.rules.remove(&rule.seq);
    }

    /// The rules whose timeouts ran out at `now_ms`, oldest first.
    pub(super) fn expired(&self, now_ms: u64) -> impl Iterator<Item = &Arc<Rule>> {
        self.rules.values().filter(move |r| r.expired(now_ms))
    }
}
