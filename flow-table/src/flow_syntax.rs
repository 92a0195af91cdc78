//! The flow syntax of ovs-ofctl: parsing `add-flow`/`mod-flows`/`del-flows` strings and printing
//! rules as `dump-flows` does.
//!
//! ```
//! use flow_table::flow_syntax::{parse_flow, FlowMode};
//!
//! let ports = |name: &str| (name == "vm1").then_some(7);
//! let f = parse_flow(
//!     "table=0,priority=100,in_port=vm1,nw_src=10.0.0.0/24,tcp,tp_dst=80,actions=output:2",
//!     FlowMode::Add,
//!     &ports,
//! )
//! .unwrap();
//! assert_eq!(f.priority, 100);
//! assert_eq!(
//!     flow_table::flow_syntax::format_match(&f.r#match),
//!     "tcp,in_port=7,nw_src=10.0.0.0/24,tp_dst=80"
//! );
//! ```
//!
//! The parser accepts and refuses what `ovs-ofctl` does, with the same meaning (each part
//! says how, in `flow_syntax/`); `flow-table/tests/ofctl_parity.rs` checks it against
//! `ovs-ofctl parse-flow` on a corpus of a thousand flows. vswitch refuses on purpose some
//! flows ovs-ofctl accepts: actions and flags it does not implement (named in the error, never
//! ignored), and match fields whose prerequisite is missing (which ovs-ofctl drops silently).
//!
//! The printer writes only forms the parser reads back for every match and action list the
//! parser gives, so a dumped flow can be fed to `add-flow` again and give the same rule.
//! (Matches built in code with masks the syntax cannot state, e.g. half an `in_port`, print
//! in a generic form that does not read back.)

use std::fmt;

use crate::actions::Action;
use crate::matches::Match;
use crate::rule::RuleSpec;
use crate::tables::RuleFilter;

mod action_list;
mod action_rules;
mod match_fields;
mod ports;
mod print;
mod tokens;
mod values;

pub use ports::{OFPP_CONTROLLER, OFPP_LOCAL, OFPP_NONE};
pub use print::{format_actions, format_match, format_match_named, format_rule};

use match_fields::MatchBuilder;
use tokens::{find_actions, pieces, Piece};
use values::{parse_dec, parse_max};

/// The priority OpenFlow gives a flow that does not state one.
pub const DEFAULT_PRIORITY: u16 = 32768;

/// Which ovs-ofctl command the flow is for; decides whether actions are required.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowMode {
    /// `add-flow`: actions are required; `cookie=` sets the new rule's cookie.
    Add,
    /// `mod-flows`: actions are required; `cookie=V/M` selects rules, `cookie=V` sets the cookie.
    Modify,
    /// `del-flows`: a match only (actions are an error); `cookie=` and `out_port=` select rules.
    Delete,
}

/// A flow string, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedFlow {
    /// `table=`: one table, or `None` when not given (table 0 for adds, every table otherwise).
    pub table: Option<u8>,
    /// `priority=`, [`DEFAULT_PRIORITY`] when not given.
    pub priority: u16,
    /// The match, already validated.
    pub r#match: Match,
    /// The actions (`drop` gives an empty list, which OpenFlow treats as drop).
    pub actions: Vec<Action>,
    /// `cookie=`: the new cookie, or the value to select with under `cookie_mask`.
    pub cookie: u64,
    /// Cookie bits a modify/delete compares (0 = any rule). A plain `cookie=V` in
    /// [`FlowMode::Delete`] compares every bit.
    pub cookie_mask: u64,
    /// `idle_timeout=` in seconds (0 = none).
    pub idle_timeout: u16,
    /// `hard_timeout=` in seconds (0 = none).
    pub hard_timeout: u16,
    /// `out_port=`: modify/delete only rules that output to this port.
    pub out_port: Option<u32>,
    /// `send_flow_rem`: the controller hears when the rule expires or is deleted.
    pub send_flow_rem: bool,
}

impl ParsedFlow {
    /// The rule to install (`add-flow`); a missing table means table 0.
    pub fn to_rule_spec(&self) -> RuleSpec {
        RuleSpec {
            table: self.table.unwrap_or(0),
            priority: self.priority,
            r#match: self.r#match,
            actions: self.actions.clone(),
            cookie: self.cookie,
            idle_timeout: self.idle_timeout,
            hard_timeout: self.hard_timeout,
            send_flow_rem: self.send_flow_rem,
        }
    }

    /// The selection of rules for `mod-flows`/`del-flows` (strictness is the caller's choice,
    /// as it is a command-line option and not part of the flow).
    pub fn to_rule_filter(&self) -> RuleFilter {
        RuleFilter {
            table: self.table,
            r#match: self.r#match,
            priority: self.priority,
            cookie: self.cookie,
            cookie_mask: self.cookie_mask,
            out_port: self.out_port,
        }
    }
}

/// A flow string that cannot be parsed, pointing at the offending token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowParseError {
    /// Byte offset of the token in the input.
    pub pos: usize,
    /// The offending token (empty when something is missing at the end).
    pub token: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FlowParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.token.is_empty() {
            write!(f, "{} (at column {})", self.message, self.pos + 1)
        } else {
            write!(
                f,
                "{}: {} (at column {})",
                self.token,
                self.message,
                self.pos + 1
            )
        }
    }
}

impl std::error::Error for FlowParseError {}

fn err<T>(pos: usize, token: &str, message: impl Into<String>) -> Result<T, FlowParseError> {
    Err(FlowParseError {
        pos,
        token: token.to_string(),
        message: message.into(),
    })
}

/// Parses an action list (the text after `actions=`, which starts at byte `base` of the flow)
/// for a rule in `table` (`None`: not known, as for `mod-flows` over every table) with match
/// `m`, against which `set_field` prerequisites are checked.
pub fn parse_actions(
    s: &str,
    base: usize,
    table: Option<u8>,
    m: &Match,
    ports: &dyn Fn(&str) -> Option<u32>,
) -> Result<Vec<Action>, FlowParseError> {
    let mut list = Vec::new();
    for p in pieces(s, base) {
        match action_list::parse_action(p, ports) {
            Ok(a) => list.push(a),
            Err(m) => return err(p.pos, p.text, m),
        }
    }
    action_rules::check_actions(&list, table, m)
}

/// Flow-mod flags ovs-ofctl takes and vswitch does not implement.
const UNSUPPORTED_FLAGS: [&str; 5] = [
    "check_overlap",
    "reset_counts",
    "no_packet_counts",
    "no_byte_counts",
    "importance",
];

/// Parses a flow as `ovs-ofctl add-flow`/`mod-flows`/`del-flows` take it.
///
/// `ports` resolves port names (in `in_port=`, `out_port=`, `output:`, `resubmit`); numbers and
/// OpenFlow's reserved names (`LOCAL`, `IN_PORT`...) are read as ovs-ofctl reads them. The
/// fields `duration`, `n_packets`, `n_bytes`, `idle_age` and `hard_age` are ignored, so the
/// output of [`format_rule`] (like `dump-flows`) reads back. A field given twice keeps its
/// later value, as in ovs-ofctl.
pub fn parse_flow(
    s: &str,
    mode: FlowMode,
    ports: &dyn Fn(&str) -> Option<u32>,
) -> Result<ParsedFlow, FlowParseError> {
    let (match_part, actions_at) = match find_actions(s) {
        Some(i) => (&s[..i], Some(i)),
        None => (s, None),
    };
    let mut flow = ParsedFlow {
        table: None,
        priority: DEFAULT_PRIORITY,
        r#match: Match::any(),
        actions: Vec::new(),
        cookie: 0,
        cookie_mask: 0,
        idle_timeout: 0,
        hard_timeout: 0,
        out_port: None,
        send_flow_rem: false,
    };
    let mut b = MatchBuilder::new();
    for p in pieces(match_part, 0) {
        if !parse_meta(&p, mode, &mut flow, ports)? {
            b.add(&p, ports)?;
        }
    }
    flow.r#match = b.finish(s)?;
    match (actions_at, mode) {
        (Some(at), FlowMode::Delete) => {
            let tok = s[at..].split([',', ' ']).next().unwrap_or("actions=");
            return err(at, tok, "del-flows takes no actions");
        }
        (None, FlowMode::Add | FlowMode::Modify) => {
            return err(
                s.len(),
                "",
                "missing 'actions=' (add-flow and mod-flows need actions)",
            )
        }
        (Some(at), _) => {
            let base = at + "actions=".len();
            // add-flow without a table adds to table 0; mod-flows without one changes rules of
            // every table, whose tables.rs checks against each rule's table.
            let table = match mode {
                FlowMode::Add => Some(flow.table.unwrap_or(0)),
                _ => flow.table,
            };
            flow.actions = parse_actions(&s[base..], base, table, &flow.r#match, ports)?;
        }
        (None, FlowMode::Delete) => {}
    }
    Ok(flow)
}

/// Reads `p` into `flow` when it is one of the flow's own fields (table, priority, cookie,
/// timeouts, flags, out_port, counters to ignore); false when it is a match field.
fn parse_meta(
    p: &Piece<'_>,
    mode: FlowMode,
    flow: &mut ParsedFlow,
    ports: &dyn Fn(&str) -> Option<u32>,
) -> Result<bool, FlowParseError> {
    let fail = |m: String| FlowParseError {
        pos: p.pos,
        token: p.text.to_string(),
        message: m,
    };
    let k = p.key;
    if ["duration", "n_packets", "n_bytes", "idle_age", "hard_age"].contains(&k) {
        return Ok(true);
    }
    if k == "send_flow_rem" {
        // A flag: ovs-ofctl takes it with no value only.
        if !p.value.is_empty() {
            return err(p.pos, p.text, "send_flow_rem takes no value");
        }
        flow.send_flow_rem = true;
        return Ok(true);
    }
    if UNSUPPORTED_FLAGS.contains(&k) {
        return err(p.pos, p.text, format!("'{k}' is not supported by vswitch"));
    }
    if ![
        "table",
        "priority",
        "cookie",
        "idle_timeout",
        "hard_timeout",
        "out_port",
    ]
    .contains(&k)
    {
        return Ok(false);
    }
    let v = p.value;
    if v.is_empty() {
        return err(p.pos, p.text, format!("field '{k}' needs a value"));
    }
    match k {
        "table" => {
            // Decimal, as ovs-ofctl reads table numbers; 255 means "every table" (an add
            // goes to table 0 then).
            let t = match parse_dec(v) {
                Some(t) if t <= 255 => t,
                _ => {
                    return err(
                        p.pos,
                        p.text,
                        format!("unknown table '{v}' (0-254, or 255)"),
                    )
                }
            };
            flow.table = (t != 255).then_some(t as u8);
        }
        "priority" => flow.priority = parse_max(v, 0xffff, "priority").map_err(fail)? as u16,
        "cookie" => {
            let (c, m) = match v.split_once('/') {
                Some((c, m)) => (c, Some(m)),
                None => (v, None),
            };
            flow.cookie = parse_max(c, u64::MAX as u128, "cookie").map_err(fail)? as u64;
            match (m, mode) {
                (Some(_), FlowMode::Add) => {
                    return err(
                        p.pos,
                        p.text,
                        "a cookie mask only selects rules (mod-flows, del-flows)",
                    )
                }
                (Some(m), _) => {
                    // ovs-ofctl takes -1 for "every bit".
                    flow.cookie_mask = if m == "-1" {
                        u64::MAX
                    } else {
                        parse_max(m, u64::MAX as u128, "cookie mask").map_err(fail)? as u64
                    }
                }
                // del-flows has no cookie to set, so a plain cookie selects exactly.
                (None, FlowMode::Delete) => flow.cookie_mask = u64::MAX,
                (None, _) => {}
            }
        }
        "idle_timeout" => {
            flow.idle_timeout = parse_max(v, 0xffff, "idle_timeout").map_err(fail)? as u16
        }
        "hard_timeout" => {
            flow.hard_timeout = parse_max(v, 0xffff, "hard_timeout").map_err(fail)? as u16
        }
        _ => {
            if mode == FlowMode::Add {
                return err(
                    p.pos,
                    p.text,
                    "out_port only selects rules (mod-flows, del-flows)",
                );
            }
            flow.out_port = Some(ports::parse_port(v, ports).map_err(fail)?);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests;
