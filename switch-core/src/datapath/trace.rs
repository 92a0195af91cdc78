//! `ofproto/trace` for vswitch: what the bridge would do with a packet — each table consulted,
//! the rule that matched, the actions, the NORMAL decision, the megaflow that would be
//! installed and the ports the packet would leave by. Reads the rule and MAC tables only:
//! nothing is learnt, installed or counted.

use std::fmt::Write;

use flow_table::actions::List;
use flow_table::flow_syntax::{format_actions, format_match_named};
use flow_table::upcall::XlateError;
use flow_table::wire::hex;
use flow_table::{Action, DpAction, Field, FlowKey, FlowMask, Match, SetField};

use crate::datapath::bridge::BridgeShared;
use crate::datapath::modify;
use crate::datapath::normal::NormalNote;
use crate::datapath::stats::DropReason;

/// One table lookup of a trace.
#[derive(Clone, Debug)]
pub struct TraceTable {
    /// Nesting depth (`goto_table`/`resubmit`).
    pub depth: usize,
    /// Table id.
    pub table: u8,
    /// The matching rule, or `None` (a miss: the packet is dropped in this table).
    pub rule: Option<TraceRule>,
    /// Datapath actions the rule emitted (nested lookups included).
    pub emitted: Vec<DpAction>,
}

/// The rule that matched in one table.
#[derive(Clone, Debug)]
pub struct TraceRule {
    /// Priority.
    pub priority: u16,
    /// Cookie.
    pub cookie: u64,
    /// Match.
    pub r#match: Match,
    /// Actions.
    pub actions: Vec<Action>,
}

/// A whole trace.
#[derive(Clone, Debug)]
pub struct TraceReport {
    /// Bridge name.
    pub bridge: String,
    /// The packet's flow.
    pub flow: FlowKey,
    /// Each table lookup, in order.
    pub tables: Vec<TraceTable>,
    /// What each NORMAL a rule ran decided, in order.
    pub normal: Vec<NormalNote>,
    /// The datapath actions (NORMAL resolved).
    pub actions: Vec<DpAction>,
    /// The megaflow the datapath would install.
    pub megaflow: Match,
    /// Ports the packet would leave by.
    pub outputs: Vec<u32>,
    /// Why it would be dropped, when it goes nowhere.
    pub drop: Option<DropReason>,
    /// Translation error.
    pub error: Option<XlateError>,
    /// With a packet: the frames that leave, (port, bytes) in output order, exactly as the
    /// datapath's actions make them.
    pub copies: Option<Vec<(u32, Vec<u8>)>>,
    /// The bridge is fail-open: NORMAL decided, the rules were not consulted.
    pub fail_open: bool,
    /// Packet-ins the packet would cause: (reason, max_len), in order.
    pub to_controller: Vec<(flow_table::PacketInReason, u16)>,
}

/// The fields of `key` worth showing: every non-zero one, with the ingress port and type.
pub fn key_match(key: &FlowKey) -> Match {
    let mut mask = FlowMask::EMPTY;
    for f in Field::ALL {
        if f.get(key) != 0 || matches!(f, Field::InPort | Field::EthType) {
            f.set(&mut mask.0, f.all_ones());
        }
    }
    Match::new(*key, mask)
}

/// Traces `key` (extracted from `frame` when there is one) through a bridge: the datapath's
/// own translation ([`BridgeShared::xlate_traced`]), without learning.
pub fn trace(
    bridge: &BridgeShared,
    key: &FlowKey,
    frame: Option<&[u8]>,
    now_ms: u64,
) -> TraceReport {
    let (x, steps, normal) = bridge.xlate_traced(key, now_ms);
    let ports = bridge.l2.load().ports.clone();
    let mut copies = None;
    let mut drop = None;
    if let Some(f) = frame {
        let (mut c, failed) = execute(&x.actions, f);
        // An output to a missing port drops that copy.
        c.retain(|(p, _)| ports.contains(p));
        drop = failed;
        copies = Some(c);
    }
    // Where it leaves.
    let outputs: Vec<u32> = match &copies {
        Some(c) => c.iter().map(|(p, _)| *p).collect(),
        None => x
            .actions
            .iter()
            .filter_map(|a| match a {
                DpAction::Output(p) if ports.contains(p) => Some(*p),
                _ => None,
            })
            .collect(),
    };
    let has_output = x.actions.iter().any(|a| matches!(a, DpAction::Output(_)));
    let to_controller: Vec<_> = x
        .actions
        .iter()
        .filter_map(|a| match a {
            DpAction::Controller {
                reason, max_len, ..
            } => Some((*reason, *max_len)),
            _ => None,
        })
        .collect();
    // A packet that goes to the controller only is delivered, not dropped.
    if drop.is_none() && outputs.is_empty() && to_controller.is_empty() {
        drop = Some(if x.error.is_some() {
            DropReason::UpcallFailed
        } else if has_output || (x.normal && !normal.is_empty()) {
            DropReason::NoPort
        } else {
            DropReason::Policy
        });
    }
    TraceReport {
        bridge: bridge.name.clone(),
        flow: *key,
        tables: steps
            .into_iter()
            .map(|s| TraceTable {
                depth: s.depth,
                table: s.table,
                rule: s.rule.as_ref().map(|r| TraceRule {
                    priority: r.priority,
                    cookie: r.cookie,
                    r#match: r.r#match,
                    actions: r.actions.to_vec(),
                }),
                emitted: s.emitted,
            })
            .collect(),
        normal,
        actions: x.actions,
        megaflow: Match::new(*key, x.mask),
        outputs,
        drop,
        error: x.error,
        copies,
        fail_open: bridge.tables.load().miss().fail_open,
        to_controller,
    }
}

/// Runs datapath `actions` on a copy of `frame` as `execute.rs` does on a packet: each output
/// takes the frame as modified so far; a rewrite that does not fit drops the packet
/// (`malformed`) from there on. Returns the copies and that drop.
pub fn execute(actions: &[DpAction], frame: &[u8]) -> (Vec<(u32, Vec<u8>)>, Option<DropReason>) {
    let mut f = frame.to_vec();
    let mut out = Vec::new();
    for a in actions {
        let ok = match a {
            DpAction::Output(p) => {
                out.push((*p, f.clone()));
                true
            }
            DpAction::PushVlan { tpid, tci } => modify::push_vlan(&mut f, *tpid, *tci),
            DpAction::PopVlan => modify::pop_vlan(&mut f),
            // Metadata for a tunnel port; the frame is unchanged.
            DpAction::Set(SetField::TunId(_)) => true,
            DpAction::Set(sf) => modify::set_field(&mut f, sf),
            DpAction::DecTtl => modify::dec_ttl(&mut f),
            // The bridge's translation resolves NORMAL and FLOOD.
            _ => true,
        };
        if !ok {
            return (out, Some(DropReason::Malformed));
        }
    }
    (out, None)
}

impl TraceReport {
    /// The trace as `ovs-appctl ofproto/trace` prints it, with port names from `names`.
    pub fn to_text(&self, names: &dyn Fn(u32) -> Option<String>) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "Flow: {}",
            format_match_named(&key_match(&self.flow), names)
        );
        let _ = writeln!(s, "\nbridge(\"{}\")", self.bridge);
        let _ = writeln!(s, "{}", "-".repeat(self.bridge.len() + 10));
        if self.fail_open {
            let _ = writeln!(
                s,
                "fail-open: every packet goes to NORMAL, the rules are not consulted"
            );
        }
        for t in &self.tables {
            let pad = "    ".repeat(t.depth);
            match &t.rule {
                Some(r) => {
                    let m = format_match_named(&r.r#match, names);
                    let _ = writeln!(
                        s,
                        "{pad}{:2}. {}priority {}, cookie {:#x}",
                        t.table,
                        if m.is_empty() {
                            String::new()
                        } else {
                            format!("{m}, ")
                        },
                        r.priority,
                        r.cookie
                    );
                    let _ = writeln!(s, "{pad}    {}", format_actions(&r.actions, names));
                }
                None => {
                    let _ = writeln!(s, "{pad}{:2}. No match.", t.table);
                    match t.emitted.first() {
                        Some(DpAction::Controller { max_len, .. }) => {
                            let _ = writeln!(s, "{pad}    CONTROLLER:{max_len} (no_match)");
                        }
                        _ => {
                            let _ = writeln!(s, "{pad}    drop");
                        }
                    }
                }
            }
        }
        for n in &self.normal {
            let list = |ps: &[u32]| ps.iter().map(|p| port(*p, names)).collect::<Vec<_>>();
            let line = match n {
                NormalNote::Flood { vlan, ports } if ports.is_empty() => {
                    format!("no learned MAC for the destination in VLAN {vlan}, and no other port carries it: dropping")
                }
                NormalNote::Flood { vlan, ports } => format!(
                    "no learned MAC for the destination in VLAN {vlan}, flooding to {}",
                    list(ports).join(", ")
                ),
                NormalNote::Learned { vlan, port: p } => {
                    format!(
                        "forwarding to learned port {} (VLAN {vlan})",
                        port(*p, names)
                    )
                }
                NormalNote::IngressPort => {
                    "destination learned on the ingress port, dropping".to_owned()
                }
                NormalNote::NotOnPort { vlan, port: p } => format!(
                    "destination learned on port {}, which does not carry VLAN {vlan}: dropping",
                    port(*p, names)
                ),
                NormalNote::Reserved => {
                    "reserved 802.1D destination (01:80:c2:00:00:0x), dropping".to_owned()
                }
                NormalNote::VlanRefused => {
                    "the ingress port does not take this VLAN, dropping".to_owned()
                }
                NormalNote::MirrorPort => {
                    "the ingress port is a mirror's output, dropping".to_owned()
                }
                NormalNote::NoInputPort => "no such ingress port, dropping".to_owned(),
            };
            let _ = writeln!(s, "\nNORMAL: {line}");
        }
        if let Some(e) = self.error {
            let _ = writeln!(s, "\nTranslation failed: {e:?}");
        }
        let _ = writeln!(
            s,
            "\nMegaflow: {}",
            format_match_named(&self.megaflow, names)
        );
        let _ = writeln!(s, "Datapath actions: {}", List(&self.actions));
        if self.outputs.is_empty() {
            let _ = writeln!(s, "Output ports: none");
        } else {
            let list: Vec<String> = self.outputs.iter().map(|p| port(*p, names)).collect();
            let _ = writeln!(s, "Output ports: {}", list.join(", "));
        }
        for (reason, max_len) in &self.to_controller {
            let _ = writeln!(
                s,
                "Sent to the controller: packet-in, reason {reason}, max_len {max_len}"
            );
        }
        if let Some(d) = self.drop {
            let _ = writeln!(s, "Drop reason: {}", d.name());
        }
        if let Some(c) = &self.copies {
            for (p, f) in c {
                let _ = writeln!(s, "Sent on {}: {}", port(*p, names), hex(f));
            }
        }
        s
    }
}

fn port(p: u32, names: &dyn Fn(u32) -> Option<String>) -> String {
    match names(p) {
        Some(n) => format!("{p} ({n})"),
        None => p.to_string(),
    }
}

#[cfg(test)]
mod tests;
