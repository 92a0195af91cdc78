//! `ofproto/trace` for vswitch: what the bridge would do with a packet — each table consulted,
//! the rule that matched, the actions, the NORMAL decision, the megaflow that would be
//! installed and the ports the packet would leave by. Reads the rule and MAC tables only:
//! nothing is learnt, installed or counted.

use std::fmt::Write;

use flow_table::flow_syntax::{format_actions, format_match_named};
use flow_table::upcall::XlateError;
use flow_table::{translate_traced, Action, DpAction, Field, FlowKey, FlowMask, Match};

use crate::bridge::BridgeShared;
use crate::normal;
use crate::stats::DropReason;

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
    /// What NORMAL decided, when a rule ran it: `Some(None)` means it sends nowhere (the
    /// destination was learnt on the ingress port).
    pub normal: Option<Option<DpAction>>,
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

/// Traces `key` through a bridge whose ports are `ports` (for floods).
pub fn trace(bridge: &BridgeShared, key: &FlowKey, ports: &[u32], now_ms: u64) -> TraceReport {
    let tables = bridge.tables.load();
    let (x, steps) = translate_traced(&tables, key);
    let mut normal = None;
    let mut actions = Vec::with_capacity(x.actions.len());
    for a in &x.actions {
        if *a == DpAction::Normal {
            let o = normal::outcome(key, &bridge.macs(), now_ms);
            actions.extend(o.clone());
            normal = Some(o);
        } else {
            actions.push(a.clone());
        }
    }
    // Where it leaves: outputs to ports that exist (an output to a missing port drops).
    let mut outputs = Vec::new();
    for a in &actions {
        match a {
            DpAction::Output(p) if ports.contains(p) => outputs.push(*p),
            DpAction::Flood => outputs.extend(ports.iter().copied().filter(|p| *p != key.in_port)),
            _ => {}
        }
    }
    let has_output = actions
        .iter()
        .any(|a| matches!(a, DpAction::Output(_) | DpAction::Flood));
    let drop = if x.error.is_some() {
        Some(DropReason::UpcallFailed)
    } else if !outputs.is_empty() {
        None
    } else if has_output || normal == Some(None) {
        Some(DropReason::NoPort)
    } else {
        Some(DropReason::Policy)
    };
    TraceReport {
        bridge: bridge.name.clone(),
        flow: *key,
        tables: steps
            .iter()
            .map(|s| TraceTable {
                depth: s.depth,
                table: s.table,
                rule: s.rule.as_ref().map(|r| TraceRule {
                    priority: r.priority,
                    cookie: r.cookie,
                    r#match: r.r#match,
                    actions: r.actions.to_vec(),
                }),
                emitted: x.actions[s.actions.0..s.actions.1].to_vec(),
            })
            .collect(),
        normal,
        actions,
        megaflow: Match::new(*key, x.mask),
        outputs,
        drop,
        error: x.error,
    }
}

fn dp_actions(a: &[DpAction]) -> String {
    if a.is_empty() {
        return "drop".into();
    }
    a.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",")
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
                    let _ = writeln!(s, "{pad}    drop");
                }
            }
        }
        match &self.normal {
            Some(Some(DpAction::Flood)) => {
                let _ = writeln!(s, "\nNORMAL: no learned MAC for the destination, flooding");
            }
            Some(Some(DpAction::Output(p))) => {
                let _ = writeln!(
                    s,
                    "\nNORMAL: forwarding to learned port {}",
                    port(*p, names)
                );
            }
            Some(_) => {
                let _ = writeln!(
                    s,
                    "\nNORMAL: destination learned on the ingress port, dropping"
                );
            }
            None => {}
        }
        if let Some(e) = self.error {
            let _ = writeln!(s, "\nTranslation failed: {e:?}");
        }
        let _ = writeln!(
            s,
            "\nMegaflow: {}",
            format_match_named(&self.megaflow, names)
        );
        let _ = writeln!(s, "Datapath actions: {}", dp_actions(&self.actions));
        if self.outputs.is_empty() {
            let _ = writeln!(s, "Output ports: none");
        } else {
            let list: Vec<String> = self.outputs.iter().map(|p| port(*p, names)).collect();
            let _ = writeln!(s, "Output ports: {}", list.join(", "));
        }
        if let Some(d) = self.drop {
            let _ = writeln!(s, "Drop reason: {}", d.name());
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
mod tests {
    use super::*;
    use crate::mac_table::MacTable;
    use flow_table::{RuleSpec, RuleTables};
    use std::net::Ipv4Addr;

    fn bridge(specs: Vec<RuleSpec>) -> BridgeShared {
        let mut t = RuleTables::new();
        for s in specs {
            t.add(s, 0).unwrap();
        }
        BridgeShared::new(1, "br0", t, MacTable::default())
    }

    fn tcp_key() -> FlowKey {
        let mut k = FlowKey::ZERO;
        k.in_port = 1;
        k.eth_src = [2, 0, 0, 0, 0, 1];
        k.eth_dst = [2, 0, 0, 0, 0, 2];
        k.eth_type = 0x0800;
        k.nw_proto = 6;
        k.nw_dst = u32::from(Ipv4Addr::new(10, 0, 0, 2));
        k.nw_ttl = 64;
        k.tp_dst = 80;
        k
    }

    #[test]
    fn rule_chain_with_cookie_priority_megaflow_and_outputs() {
        let ip = Match::any().eth_type(0x0800);
        let mut first = RuleSpec::new(
            200,
            ip.nw_dst(Ipv4Addr::new(10, 0, 0, 2), 32),
            vec![Action::GotoTable(3)],
        );
        first.cookie = 0xabc;
        let br = bridge(vec![
            first,
            RuleSpec {
                table: 3,
                ..RuleSpec::new(5, Match::any(), vec![Action::Output(2)])
            },
        ]);
        let names = |p: u32| (p == 2).then(|| "p2".to_owned());
        let r = trace(&br, &tcp_key(), &[1, 2, 3], 0);
        assert_eq!(r.tables.len(), 2);
        let rule = r.tables[0].rule.as_ref().unwrap();
        assert_eq!((rule.priority, rule.cookie), (200, 0xabc));
        assert_eq!(r.actions, vec![DpAction::Output(2)]);
        assert_eq!(r.outputs, vec![2]);
        assert_eq!(r.drop, None);
        assert!(r.megaflow.matches(&tcp_key()));
        let text = r.to_text(&names);
        assert!(text.contains("priority 200, cookie 0xabc"), "{text}");
        assert!(text.contains("goto_table:3"), "{text}");
        assert!(text.contains("     3. priority 5, cookie 0x0"), "{text}");
        assert!(text.contains("output:p2"), "{text}");
        assert!(
            text.contains("Megaflow: ip,in_port=1,nw_dst=10.0.0.2"),
            "{text}"
        );
        assert!(text.contains("Datapath actions: 2\n"), "{text}");
        assert!(text.contains("Output ports: 2 (p2)"), "{text}");
        // Nothing was counted.
        assert!(br
            .tables
            .load()
            .rules()
            .iter()
            .all(|r| r.stats.packets() == 0));
    }

    #[test]
    fn normal_is_resolved_without_learning_and_drops_have_reasons() {
        let br = bridge(vec![RuleSpec::new(0, Match::any(), vec![Action::Normal])]);
        let r = trace(&br, &tcp_key(), &[1, 2, 3], 0);
        assert_eq!(r.normal, Some(Some(DpAction::Flood)));
        assert_eq!(r.outputs, vec![2, 3]);
        assert!(br.macs().rows(0).is_empty(), "a trace learns nothing");
        assert!(r.to_text(&|_| None).contains("flooding"));

        br.macs().learn(0, [2, 0, 0, 0, 0, 2], 3, 0);
        let r = trace(&br, &tcp_key(), &[1, 2, 3], 0);
        assert_eq!(r.outputs, vec![3]);
        // The destination behind the ingress port: NORMAL has no route.
        br.macs().learn(0, [2, 0, 0, 0, 0, 2], 1, 0);
        let r = trace(&br, &tcp_key(), &[1, 2, 3], 0);
        assert_eq!(
            (r.outputs.clone(), r.drop),
            (vec![], Some(DropReason::NoPort))
        );
        assert!(r.to_text(&|_| None).contains("learned on the ingress port"));

        let br = bridge(vec![RuleSpec::new(9, Match::any(), vec![Action::Drop])]);
        let r = trace(&br, &tcp_key(), &[1, 2], 0);
        assert_eq!(r.drop, Some(DropReason::Policy));
        assert!(r.to_text(&|_| None).contains("Drop reason: policy"));

        let br = bridge(vec![RuleSpec::new(
            9,
            Match::any(),
            vec![Action::Output(7)],
        )]);
        let r = trace(&br, &tcp_key(), &[1, 2], 0);
        assert_eq!(r.drop, Some(DropReason::NoPort));

        let r = trace(&bridge(vec![]), &tcp_key(), &[1, 2], 0);
        assert!(r.tables[0].rule.is_none());
        assert!(r.to_text(&|_| None).contains(" 0. No match."));
    }
}
