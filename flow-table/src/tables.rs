//! The rule tables of a bridge and the flow-mod operations ovs-ofctl offers on them.

use std::fmt;
use std::sync::Arc;

use crate::actions::Action;
use crate::key::{FlowKey, FlowMask};
use crate::matches::{Match, MatchError};
use crate::rule::{Rule, RuleSpec, RuleStats};
use crate::rule_table::RuleTable;

/// Number of tables (ids 0 to 254; 255 means "all tables" in OpenFlow).
pub const N_TABLES: usize = 255;

/// Default cap on the number of rules of a bridge.
pub const DEFAULT_MAX_RULES: usize = 1_000_000;

/// A rule change the caches must hear about: packets matching `r#match` may now be treated
/// differently in `table`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RuleChange {
    /// Table of the changed rule.
    pub table: u8,
    /// Match of the changed rule.
    pub r#match: Match,
}

impl RuleChange {
    /// The change made by adding, modifying or removing `rule`.
    pub fn of(rule: &Rule) -> RuleChange {
        RuleChange {
            table: rule.table,
            r#match: rule.r#match,
        }
    }
}

/// Which rules a modify or delete applies to, as ovs-ofctl's `mod-flows`/`del-flows` select them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleFilter {
    /// One table, or all tables when `None`.
    pub table: Option<u8>,
    /// Strict: the exact match. Non-strict: every rule whose match this one covers.
    pub r#match: Match,
    /// Strict only: the exact priority.
    pub priority: u16,
    /// Rules whose cookie equals this under `cookie_mask`.
    pub cookie: u64,
    /// Cookie bits that must be equal (0 = any cookie).
    pub cookie_mask: u64,
    /// Only rules with an `output` to this port.
    pub out_port: Option<u32>,
}

impl RuleFilter {
    /// Every rule of every table.
    pub fn all() -> RuleFilter {
        RuleFilter {
            table: None,
            r#match: Match::any(),
            priority: 0,
            cookie: 0,
            cookie_mask: 0,
            out_port: None,
        }
    }

    /// Rules whose match is covered by `m` (non-strict) or equals it at `priority` (strict).
    pub fn matching(m: Match, priority: u16) -> RuleFilter {
        RuleFilter {
            r#match: m,
            priority,
            ..RuleFilter::all()
        }
    }

    /// Rules with this cookie (every bit compared).
    pub fn cookie(cookie: u64) -> RuleFilter {
        RuleFilter {
            cookie,
            cookie_mask: u64::MAX,
            ..RuleFilter::all()
        }
    }

    fn selects(&self, rule: &Rule, strict: bool) -> bool {
        if self.table.is_some_and(|t| t != rule.table) {
            return false;
        }
        if (rule.cookie ^ self.cookie) & self.cookie_mask != 0 {
            return false;
        }
        if let Some(p) = self.out_port {
            if !rule.actions.contains(&Action::Output(p)) {
                return false;
            }
        }
        if strict {
            rule.priority == self.priority && rule.r#match == self.r#match
        } else {
            self.r#match.covers(&rule.r#match)
        }
    }
}

/// Why a flow mod was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowModError {
    /// The match misses a prerequisite.
    BadMatch(MatchError),
    /// `goto_table` must name a later table.
    BadGoto {
        /// The rule's table.
        from: u8,
        /// The target.
        to: u8,
    },
    /// Table 255 is not a table.
    BadTable(u8),
    /// The rule limit is reached.
    TooManyRules(usize),
}

impl fmt::Display for FlowModError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlowModError::BadMatch(e) => write!(f, "{e}"),
            FlowModError::BadGoto { from, to } => write!(
                f,
                "goto_table:{to} in table {from}: goto_table must name a later table"
            ),
            FlowModError::BadTable(t) => write!(f, "table {t} does not exist (0 to 254)"),
            FlowModError::TooManyRules(n) => write!(f, "rule limit of {n} reached"),
        }
    }
}

impl std::error::Error for FlowModError {}

/// The rule tables of one bridge.
///
/// Cloning is cheap per rule (rules are shared `Arc`s, so counters stay shared), which lets a
/// control plane keep a copy for readers while it edits another.
#[derive(Clone, Debug)]
pub struct RuleTables {
    tables: Vec<RuleTable>,
    next_seq: u64,
    generation: u64,
    max_rules: usize,
}

impl Default for RuleTables {
    fn default() -> Self {
        RuleTables::new()
    }
}

fn check_actions(table: u8, actions: &[Action]) -> Result<(), FlowModError> {
    for a in actions {
        match a {
            Action::GotoTable(t) if *t <= table || *t as usize >= N_TABLES => {
                return Err(FlowModError::BadGoto {
                    from: table,
                    to: *t,
                })
            }
            Action::Resubmit { table: Some(t), .. } if *t as usize >= N_TABLES => {
                return Err(FlowModError::BadTable(*t))
            }
            _ => {}
        }
    }
    Ok(())
}

impl RuleTables {
    /// Empty tables (a packet that matches no rule is dropped).
    pub fn new() -> RuleTables {
        RuleTables {
            tables: Vec::new(),
            next_seq: 0,
            generation: 0,
            max_rules: DEFAULT_MAX_RULES,
        }
    }

    /// Sets the cap on the number of rules.
    pub fn set_max_rules(&mut self, max: usize) {
        self.max_rules = max;
    }

    /// Counts every change; caches may compare it to notice that rules changed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of rules in all tables.
    pub fn len(&self) -> usize {
        self.tables.iter().map(RuleTable::len).sum()
    }

    /// True when some rule has an idle or hard timeout.
    pub fn has_timeouts(&self) -> bool {
        self.tables
            .iter()
            .flat_map(|t| t.iter())
            .any(|r| r.idle_timeout != 0 || r.hard_timeout != 0)
    }

    /// True when no table has a rule.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The table with this id, if it has ever held a rule.
    pub fn table(&self, id: u8) -> Option<&RuleTable> {
        self.tables.get(id as usize)
    }

    /// Every rule, ordered by table, then priority (highest first), then age.
    pub fn rules(&self) -> Vec<Arc<Rule>> {
        let mut all: Vec<Arc<Rule>> = self.tables.iter().flat_map(|t| t.iter().cloned()).collect();
        all.sort_by_key(|r| (r.table, std::cmp::Reverse(r.priority), r.seq));
        all
    }

    /// Looks `key` up in one table (see [`RuleTable::lookup`]).
    #[inline]
    pub fn lookup(&self, table: u8, key: &FlowKey, consulted: &mut FlowMask) -> Option<&Arc<Rule>> {
        self.tables.get(table as usize)?.lookup(key, consulted)
    }

    fn table_mut(&mut self, id: u8) -> &mut RuleTable {
        let id = id as usize;
        if self.tables.len() <= id {
            self.tables.resize_with(id + 1, RuleTable::default);
        }
        &mut self.tables[id]
    }

    /// `add-flow`: installs a rule, replacing one with the same table, match and priority
    /// (whose counters restart). Returns the changes the caches must apply.
    pub fn add(&mut self, spec: RuleSpec, now_ms: u64) -> Result<Vec<RuleChange>, FlowModError> {
        if spec.table as usize >= N_TABLES {
            return Err(FlowModError::BadTable(spec.table));
        }
        spec.r#match.validate().map_err(FlowModError::BadMatch)?;
        check_actions(spec.table, &spec.actions)?;
        let exists = self
            .table(spec.table)
            .and_then(|t| t.find_strict(&spec.r#match, spec.priority))
            .is_some();
        if !exists && self.len() >= self.max_rules {
            return Err(FlowModError::TooManyRules(self.max_rules));
        }
        let rule = Arc::new(Rule {
            table: spec.table,
            priority: spec.priority,
            r#match: spec.r#match,
            actions: spec.actions,
            cookie: spec.cookie,
            idle_timeout: spec.idle_timeout,
            hard_timeout: spec.hard_timeout,
            seq: self.next_seq,
            created_ms: now_ms,
            stats: Arc::default(),
        });
        self.next_seq += 1;
        self.generation += 1;
        let change = RuleChange::of(&rule);
        self.table_mut(spec.table).insert(rule);
        Ok(vec![change])
    }

    /// `mod-flows`: replaces the actions of the selected rules, keeping their counters.
    /// Returns the rules as they now are (empty when nothing was selected).
    pub fn modify(
        &mut self,
        filter: &RuleFilter,
        actions: &[Action],
        strict: bool,
    ) -> Result<Vec<Arc<Rule>>, FlowModError> {
        let selected: Vec<Arc<Rule>> = self
            .tables
            .iter()
            .flat_map(|t| t.iter())
            .filter(|r| filter.selects(r, strict))
            .cloned()
            .collect();
        for r in &selected {
            check_actions(r.table, actions)?;
        }
        let mut changes = Vec::with_capacity(selected.len());
        for old in selected {
            let new = Arc::new(Rule {
                table: old.table,
                priority: old.priority,
                r#match: old.r#match,
                actions: actions.to_vec(),
                cookie: old.cookie,
                idle_timeout: old.idle_timeout,
                hard_timeout: old.hard_timeout,
                seq: old.seq,
                created_ms: old.created_ms,
                stats: Arc::clone(&old.stats),
            });
            changes.push(Arc::clone(&new));
            self.table_mut(old.table).replace(new);
        }
        if !changes.is_empty() {
            self.generation += 1;
        }
        Ok(changes)
    }

    /// `del-flows`: removes the selected rules and returns them.
    pub fn delete(&mut self, filter: &RuleFilter, strict: bool) -> Vec<Arc<Rule>> {
        self.remove_where(|r| filter.selects(r, strict))
    }

    /// Removes the rules whose timeouts ran out at `now_ms` and returns them.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Arc<Rule>> {
        self.remove_where(|r| r.expired(now_ms))
    }

    fn remove_where(&mut self, pred: impl Fn(&Rule) -> bool) -> Vec<Arc<Rule>> {
        let doomed: Vec<Arc<Rule>> = self
            .tables
            .iter()
            .flat_map(|t| t.iter())
            .filter(|r| pred(r))
            .cloned()
            .collect();
        for r in &doomed {
            self.table_mut(r.table).remove(&r.r#match, r.priority);
        }
        if !doomed.is_empty() {
            self.generation += 1;
        }
        doomed
    }

    /// The counters of the rule with exactly this match and priority in `table`.
    pub fn stats(&self, table: u8, m: &Match, priority: u16) -> Option<Arc<RuleStats>> {
        self.table(table)?
            .find_strict(m, priority)
            .map(|r| Arc::clone(&r.stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ethertype, ipproto};
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
        assert_eq!(ch[0].actions, vec![Action::Output(9)]);
        let r = t.table(0).unwrap().find_strict(&m, 10).unwrap();
        assert_eq!(r.actions, vec![Action::Output(9)]);
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
}
