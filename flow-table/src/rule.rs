//! Rules: a match, a priority and actions, with OpenFlow's bookkeeping (cookie, timeouts,
//! counters).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::actions::{fmt_actions, Action};
use crate::matches::Match;

/// What a caller asks to install. `Default` is a drop rule matching everything at priority 0
/// in table 0, so that callers can write `RuleSpec { priority, r#match, ..Default::default() }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSpec {
    /// Table id (0–254).
    pub table: u8,
    /// Priority: higher wins (OpenFlow's default is 32768).
    pub priority: u16,
    /// Packets the rule applies to.
    pub r#match: Match,
    /// What to do with them; empty means drop.
    pub actions: Vec<Action>,
    /// Opaque controller-chosen identifier.
    pub cookie: u64,
    /// Seconds without a hit before the rule expires (0 = never).
    pub idle_timeout: u16,
    /// Seconds after installation before the rule expires (0 = never).
    pub hard_timeout: u16,
    /// OpenFlow's `OFPFF_SEND_FLOW_REM`: tell the controller when the rule expires or is
    /// deleted.
    pub send_flow_rem: bool,
}

impl RuleSpec {
    /// A rule in table 0 with no cookie and no timeouts.
    pub fn new(priority: u16, r#match: Match, actions: Vec<Action>) -> RuleSpec {
        RuleSpec {
            table: 0,
            priority,
            r#match,
            actions,
            cookie: 0,
            idle_timeout: 0,
            hard_timeout: 0,
            send_flow_rem: false,
        }
    }

    /// The same rule in another table.
    pub fn in_table(mut self, table: u8) -> RuleSpec {
        self.table = table;
        self
    }
}

/// Packet and byte counters of a rule, shared by every cache entry derived from it so the
/// datapath can credit them without going through the control plane.
#[derive(Debug, Default)]
pub struct RuleStats {
    packets: AtomicU64,
    bytes: AtomicU64,
    last_used_ms: AtomicU64,
}

impl RuleStats {
    /// Adds packets and bytes, and marks the rule used at `now_ms`.
    pub fn credit(&self, packets: u64, bytes: u64, now_ms: u64) {
        self.packets.fetch_add(packets, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.last_used_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    /// Packets counted.
    pub fn packets(&self) -> u64 {
        self.packets.load(Ordering::Relaxed)
    }

    /// Bytes counted.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Last time (ms, caller's clock) a packet was credited, or the install time.
    pub fn last_used_ms(&self) -> u64 {
        self.last_used_ms.load(Ordering::Relaxed)
    }
}

/// An installed rule. Immutable once shared; a modification installs a new `Rule` that keeps
/// the same [`RuleStats`].
#[derive(Debug)]
pub struct Rule {
    /// Table id.
    pub table: u8,
    /// Priority.
    pub priority: u16,
    /// Match.
    pub r#match: Match,
    /// Actions (empty = drop). A shared slice: rules never change their actions (a modify
    /// installs a new `Rule`), so rules with equal actions may share one list instead of
    /// paying an allocation each (see [`crate::RuleTables::add`]).
    pub actions: Arc<[Action]>,
    /// Cookie.
    pub cookie: u64,
    /// Idle timeout in seconds (0 = none).
    pub idle_timeout: u16,
    /// Hard timeout in seconds (0 = none).
    pub hard_timeout: u16,
    /// `send_flow_rem`: the controller hears when the rule expires or is deleted.
    pub send_flow_rem: bool,
    /// Installation order: breaks ties between overlapping rules of equal priority (the older
    /// rule wins), so lookups are deterministic.
    pub seq: u64,
    /// Installation time (ms, caller's clock).
    pub created_ms: u64,
    /// Counters.
    pub stats: Arc<RuleStats>,
}

impl Rule {
    /// True when the rule's timeouts have run out at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        let hard =
            self.hard_timeout != 0 && now_ms >= self.created_ms + self.hard_timeout as u64 * 1000;
        let idle = self.idle_timeout != 0
            && now_ms
                >= self.stats.last_used_ms().max(self.created_ms) + self.idle_timeout as u64 * 1000;
        hard || idle
    }

    /// True for an OpenFlow table-miss entry: priority 0 with an empty match. A packet it
    /// sends to the controller goes with reason `no_match` (OpenFlow 1.3, 5.4).
    pub fn is_table_miss(&self) -> bool {
        self.priority == 0 && self.r#match == Match::any()
    }
}

impl fmt::Display for Rule {
    /// `table=T,priority=P,cookie=C,<match>,actions=<actions>` (cookie and timeouts when set).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table={},priority={}", self.table, self.priority)?;
        if self.cookie != 0 {
            write!(f, ",cookie={:#x}", self.cookie)?;
        }
        if self.idle_timeout != 0 {
            write!(f, ",idle_timeout={}", self.idle_timeout)?;
        }
        if self.hard_timeout != 0 {
            write!(f, ",hard_timeout={}", self.hard_timeout)?;
        }
        if self.send_flow_rem {
            f.write_str(",send_flow_rem")?;
        }
        let m = self.r#match.to_string();
        if !m.is_empty() {
            write!(f, ",{m}")?;
        }
        f.write_str(",actions=")?;
        fmt_actions(&self.actions, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(idle: u16, hard: u16) -> Rule {
        Rule {
            table: 0,
            priority: 1,
            r#match: Match::any().in_port(1),
            actions: [Action::Output(2)].into(),
            cookie: 0x10,
            idle_timeout: idle,
            hard_timeout: hard,
            send_flow_rem: false,
            seq: 0,
            created_ms: 1_000,
            stats: Arc::default(),
        }
    }

    #[test]
    fn timeouts() {
        let r = rule(2, 0);
        assert!(!r.expired(2_999));
        assert!(r.expired(3_000));
        r.stats.credit(1, 60, 2_500);
        assert!(!r.expired(3_000), "a hit restarts the idle timer");
        assert!(r.expired(4_500));
        let r = rule(0, 5);
        r.stats.credit(1, 60, 5_900);
        assert!(r.expired(6_000), "a hard timeout ignores hits");
        assert!(!rule(0, 0).expired(u64::MAX / 2));
    }

    #[test]
    fn display() {
        assert_eq!(
            rule(0, 0).to_string(),
            "table=0,priority=1,cookie=0x10,in_port=1,actions=output:2"
        );
    }
}
