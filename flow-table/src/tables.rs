//! The rule tables of a bridge and the flow-mod operations ovs-ofctl offers on them.

use std::fmt;
use std::sync::Arc;

use crate::actions::Action;
use crate::key::{FlowKey, FlowMask};
use crate::matches::{Match, MatchError};
use crate::miss::MissConfig;
use crate::rule::{Rule, RuleSpec, RuleStats};
use crate::rule_table::RuleTable;

mod timeouts;

use timeouts::Timeouts;

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

    /// True when a modify or delete with this filter applies to `rule`.
    pub fn selects(&self, rule: &Rule, strict: bool) -> bool {
        if self.table.is_some_and(|t| t != rule.table) {
            return false;
        }
        if (rule.cookie ^ self.cookie) & self.cookie_mask != 0 {
            return false;
        }
        if let Some(p) = self.out_port {
            let outputs_to = |a: &Action| match a {
                Action::Output(o) => *o == p,
                // `out_port=CONTROLLER` selects the rules with a controller action.
                Action::Controller { .. } => p == crate::flow_syntax::OFPP_CONTROLLER,
                _ => false,
            };
            if !rule.actions.iter().any(outputs_to) {
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
/// A persistent value: cloning costs O(number of tables and subtables), not O(rules), and the
/// clone and the original then change independently, each change copying only the few nodes
/// it touches. That lets a control plane publish a snapshot to readers and edit a copy for the
/// next one at O(log n) per rule changed. Rules are shared `Arc`s, so counters stay shared.
#[derive(Clone, Debug)]
pub struct RuleTables {
    /// By table id; a table no change touches stays shared between clones.
    tables: Vec<Arc<RuleTable>>,
    /// The rules with a timeout, which [`RuleTables::expire`] visits.
    timed: Timeouts,
    n_rules: usize,
    /// The actions of the last rule added: a bulk add (a flow file, a restored state) mostly
    /// repeats one action list, which its rules then share.
    last_actions: Arc<[Action]>,
    next_seq: u64,
    generation: u64,
    max_rules: usize,
    /// Fail mode and table-miss behaviour, which the translation reads.
    miss: MissConfig,
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
            timed: Timeouts::default(),
            n_rules: 0,
            last_actions: Arc::new([]),
            next_seq: 0,
            generation: 0,
            max_rules: DEFAULT_MAX_RULES,
            miss: MissConfig::default(),
        }
    }

    /// The fail mode and table-miss behaviour.
    #[inline]
    pub fn miss(&self) -> MissConfig {
        self.miss
    }

    /// Sets the fail mode and table-miss behaviour. Returns the change the caches must apply:
    /// every translation starts with a lookup in table 0, so a change of table 0 matching
    /// everything drops every cached decision (and none when nothing changed).
    pub fn set_miss(&mut self, miss: MissConfig) -> Vec<RuleChange> {
        if miss == self.miss {
            return Vec::new();
        }
        self.miss = miss;
        self.generation += 1;
        vec![RuleChange {
            table: 0,
            r#match: Match::any(),
        }]
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
        self.n_rules
    }

    /// True when no table has a rule.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The table with this id, if it has ever held a rule.
    pub fn table(&self, id: u8) -> Option<&RuleTable> {
        self.tables.get(id as usize).map(|t| &**t)
    }

    /// True when some rule has an idle or hard timeout, i.e. when [`RuleTables::expire`] may
    /// have work to do. O(1).
    pub fn has_timeouts(&self) -> bool {
        !self.timed.is_empty()
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

    /// The table to edit: copied first (O(subtables)) when a clone still shares it.
    fn table_mut(&mut self, id: u8) -> &mut RuleTable {
        let id = id as usize;
        if self.tables.len() <= id {
            self.tables.resize_with(id + 1, Arc::default);
        }
        Arc::make_mut(&mut self.tables[id])
    }

    /// `add-flow`: installs a rule, replacing one with the same table, match and priority
    /// (whose counters restart). Returns the changes the caches must apply. A rule whose
    /// actions equal the previous added rule's shares that rule's action list.
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
            actions: self.share_actions(spec.actions),
            cookie: spec.cookie,
            idle_timeout: spec.idle_timeout,
            hard_timeout: spec.hard_timeout,
            send_flow_rem: spec.send_flow_rem,
            seq: self.next_seq,
            created_ms: now_ms,
            stats: Arc::default(),
        });
        self.next_seq += 1;
        self.generation += 1;
        let change = RuleChange::of(&rule);
        self.timed.added(&rule);
        match self.table_mut(spec.table).insert(rule) {
            Some(old) => self.timed.removed(&old),
            None => self.n_rules += 1,
        }
        Ok(vec![change])
    }

    fn share_actions(&mut self, actions: Vec<Action>) -> Arc<[Action]> {
        if *self.last_actions != *actions {
            self.last_actions = actions.into();
        }
        Arc::clone(&self.last_actions)
    }

    /// `mod-flows`: replaces the actions of the selected rules, keeping their counters.
    /// Returns the rules as they now are (empty when nothing was selected). Strict: O(log n)
    /// per table searched; non-strict: a scan of the tables searched.
    pub fn modify(
        &mut self,
        filter: &RuleFilter,
        actions: &[Action],
        strict: bool,
    ) -> Result<Vec<Arc<Rule>>, FlowModError> {
        let selected = self.select(filter, strict);
        for r in &selected {
            check_actions(r.table, actions)?;
        }
        let actions: Arc<[Action]> = actions.into();
        let mut changes = Vec::with_capacity(selected.len());
        for old in selected {
            let new = Arc::new(Rule {
                table: old.table,
                priority: old.priority,
                r#match: old.r#match,
                actions: Arc::clone(&actions),
                cookie: old.cookie,
                idle_timeout: old.idle_timeout,
                hard_timeout: old.hard_timeout,
                // A modify keeps the flags of the rule it changes (OpenFlow 1.3, 6.4).
                send_flow_rem: old.send_flow_rem,
                seq: old.seq,
                created_ms: old.created_ms,
                stats: Arc::clone(&old.stats),
            });
            changes.push(Arc::clone(&new));
            self.timed.added(&new);
            self.table_mut(old.table).replace(new);
        }
        if !changes.is_empty() {
            self.generation += 1;
        }
        Ok(changes)
    }

    /// `del-flows`: removes the selected rules and returns them. Strict: O(log n) per table
    /// searched; non-strict: a scan of the tables searched.
    pub fn delete(&mut self, filter: &RuleFilter, strict: bool) -> Vec<Arc<Rule>> {
        let doomed = self.select(filter, strict);
        self.remove_all(&doomed);
        doomed
    }

    /// Removes the rules whose timeouts ran out at `now_ms` and returns them. Visits only the
    /// rules that have a timeout.
    pub fn expire(&mut self, now_ms: u64) -> Vec<Arc<Rule>> {
        let doomed: Vec<Arc<Rule>> = self.timed.expired(now_ms).cloned().collect();
        self.remove_all(&doomed);
        doomed
    }

    /// The rules `filter` selects. A strict filter names one match and priority, so each table
    /// searched is probed for that rule alone; a non-strict one is checked against every rule
    /// of the tables searched (as in Open vSwitch).
    fn select(&self, filter: &RuleFilter, strict: bool) -> Vec<Arc<Rule>> {
        let tables = match filter.table {
            Some(t) => self.tables.get(t as usize..=t as usize).unwrap_or_default(),
            None => &self.tables[..],
        };
        if strict {
            tables
                .iter()
                .filter_map(|t| t.find_strict(&filter.r#match, filter.priority))
                .filter(|r| filter.selects(r, true))
                .cloned()
                .collect()
        } else {
            tables
                .iter()
                .flat_map(|t| t.iter())
                .filter(|r| filter.selects(r, false))
                .cloned()
                .collect()
        }
    }

    fn remove_all(&mut self, doomed: &[Arc<Rule>]) {
        for r in doomed {
            if self
                .table_mut(r.table)
                .remove(&r.r#match, r.priority)
                .is_some()
            {
                self.n_rules -= 1;
            }
            self.timed.removed(r);
        }
        if !doomed.is_empty() {
            self.generation += 1;
        }
    }

    /// The counters of the rule with exactly this match and priority in `table`.
    pub fn stats(&self, table: u8, m: &Match, priority: u16) -> Option<Arc<RuleStats>> {
        self.table(table)?
            .find_strict(m, priority)
            .map(|r| Arc::clone(&r.stats))
    }
}

#[cfg(test)]
mod tests;
