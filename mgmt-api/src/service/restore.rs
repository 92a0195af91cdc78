//! Rebuilding the configuration at start: the snapshot's flows, then the journal's records
//! replayed in order on rule tables that apply them exactly as the datapath did.

use std::collections::BTreeMap;

use flow_table::flow_syntax::{self, FlowMode};
use flow_table::{RuleFilter, RuleSpec, RuleTables};
use switch_core::default_rules;

use super::journal::Record;
use super::state::{Recovered, State};

/// The configuration to start with.
pub struct Restored {
    /// Bridges, ports, mirrors, namespaces (no flows).
    pub state: State,
    /// Each bridge's rules.
    pub rules: BTreeMap<String, RuleTables>,
}

/// Flows of the state file and the journal name ports by number: a port that cannot be
/// reopened must not make its flows unreadable.
fn spec(text: &str) -> Result<RuleSpec, String> {
    flow_syntax::parse_flow(text, FlowMode::Add, &|_| None)
        .map(|p| p.to_rule_spec())
        .map_err(|e| format!("flow {text:?}: {e}"))
}

/// Parses many flows, on every core: a million flows are most of a restart.
fn specs(texts: &[String]) -> Result<Vec<RuleSpec>, String> {
    // Small lists (most journal records) parse in place: asking for the core count reads
    // cgroup files, which would cost more than the parse.
    let threads = if texts.len() < 10_000 {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    if threads == 1 {
        return texts.iter().map(|t| spec(t)).collect();
    }
    let chunk = texts.len().div_ceil(threads);
    std::thread::scope(|s| {
        let parts: Vec<_> = texts
            .chunks(chunk)
            .map(|c| s.spawn(move || c.iter().map(|t| spec(t)).collect::<Result<Vec<_>, _>>()))
            .collect();
        let mut all = Vec::with_capacity(texts.len());
        for p in parts {
            all.extend(p.join().expect("flow parser thread")?);
        }
        Ok(all)
    })
}

/// The rule at exactly this table, match and priority.
fn strict(s: &RuleSpec) -> RuleFilter {
    RuleFilter {
        table: Some(s.table),
        ..RuleFilter::matching(s.r#match, s.priority)
    }
}

fn unlimited() -> RuleTables {
    let mut t = RuleTables::new();
    // What was accepted once is restored whole (a lower limit applies to new changes).
    t.set_max_rules(usize::MAX);
    t
}

/// Replays `rec` on the bridges and rules.
fn apply(
    state: &mut State,
    rules: &mut BTreeMap<String, RuleTables>,
    rec: Record,
    now: u64,
) -> Result<(), String> {
    match rec {
        Record::Meta { bridges } => {
            rules.retain(|name, _| bridges.iter().any(|b| &b.name == name));
            for b in &bridges {
                rules.entry(b.name.clone()).or_insert_with(|| {
                    let mut t = default_rules();
                    t.set_max_rules(usize::MAX);
                    t
                });
            }
            state.bridges = bridges;
        }
        Record::Add { bridge, flows } => {
            let t = bridge_rules(rules, &bridge)?;
            for s in specs(&flows)? {
                t.add(s, now)
                    .map_err(|e| format!("replaying add-flows: {e}"))?;
            }
        }
        Record::Del { bridge, all, flows } => {
            let t = bridge_rules(rules, &bridge)?;
            if all {
                t.delete(&RuleFilter::all(), false);
            }
            for s in specs(&flows)? {
                t.delete(&strict(&s), true);
            }
        }
        Record::Mod { bridge, flows } => {
            let t = bridge_rules(rules, &bridge)?;
            for s in specs(&flows)? {
                t.modify(&strict(&s), &s.actions, true)
                    .map_err(|e| format!("replaying mod-flows: {e}"))?;
            }
        }
    }
    Ok(())
}

fn bridge_rules<'a>(
    rules: &'a mut BTreeMap<String, RuleTables>,
    bridge: &str,
) -> Result<&'a mut RuleTables, String> {
    rules
        .get_mut(bridge)
        .ok_or_else(|| format!("a record names bridge {bridge}, which does not exist then"))
}

/// The configuration as the state file writes it: each bridge with its flows.
pub fn with_flows(r: Restored) -> State {
    let mut state = r.state;
    for b in &mut state.bridges {
        if let Some(t) = r.rules.get(&b.name) {
            b.flows = t
                .rules()
                .iter()
                .map(|r| super::spec_text(r, &|_| None))
                .collect();
        }
    }
    state
}

/// The configuration the snapshot and records describe.
pub fn replay(rec: Recovered, now: u64) -> Result<Restored, String> {
    let mut state = rec.snapshot;
    let mut rules = BTreeMap::new();
    for b in &mut state.bridges {
        let mut t = unlimited();
        for s in specs(&b.flows).map_err(|e| format!("restoring flows of {}: {e}", b.name))? {
            t.add(s, now)
                .map_err(|e| format!("restoring flows of {}: {e}", b.name))?;
        }
        rules.insert(b.name.clone(), t);
        b.flows = Vec::new();
    }
    let n = rec.records.len();
    for (i, r) in rec.records.into_iter().enumerate() {
        apply(&mut state, &mut rules, r, now)
            .map_err(|e| format!("journal record {} of {n}: {e}", i + 1))?;
    }
    Ok(Restored { state, rules })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::state::BridgeEntry;

    fn bridge(name: &str, flows: &[&str]) -> BridgeEntry {
        BridgeEntry {
            name: name.into(),
            datapath_type: "netdev".into(),
            ports: vec![],
            flows: flows.iter().map(|f| f.to_string()).collect(),
            mirrors: vec![],
            attached: vec![],
            controllers: vec![],
            fail_mode: None,
            datapath_id: None,
        }
    }

    fn texts(t: &RuleTables) -> Vec<String> {
        t.rules()
            .iter()
            .map(|r| super::super::spec_text(r, &|_| None))
            .collect()
    }

    #[test]
    fn records_replay_as_the_datapath_applied_them() {
        let snapshot = State {
            journal: 3,
            bridges: vec![bridge(
                "br0",
                &[
                    "priority=5,ip actions=drop",
                    "priority=6,in_port=1 actions=output:2",
                ],
            )],
        };
        let records = vec![
            Record::Add {
                bridge: "br0".into(),
                flows: vec!["priority=7,arp actions=NORMAL".into()],
            },
            Record::Del {
                bridge: "br0".into(),
                all: false,
                flows: vec!["priority=5,ip actions=drop".into()],
            },
            Record::Mod {
                bridge: "br0".into(),
                flows: vec!["priority=6,in_port=1 actions=output:3".into()],
            },
            // A second bridge appears (with the default flow), the first keeps its flows.
            Record::Meta {
                bridges: vec![bridge("br0", &[]), bridge("br1", &[])],
            },
            Record::Add {
                bridge: "br1".into(),
                flows: vec!["table=1,priority=1 actions=drop".into()],
            },
        ];
        let r = replay(Recovered { snapshot, records }, 0).unwrap();
        assert_eq!(
            texts(&r.rules["br0"]),
            [
                "priority=7,arp actions=NORMAL",
                "priority=6,in_port=1 actions=output:3"
            ]
        );
        assert_eq!(
            texts(&r.rules["br1"]),
            [
                "priority=0 actions=NORMAL",
                "table=1,priority=1 actions=drop"
            ]
        );
        assert!(r.state.bridges.iter().all(|b| b.flows.is_empty()));

        // A bridge gone and back starts afresh; deleting everything leaves nothing.
        let records = vec![
            Record::Meta { bridges: vec![] },
            Record::Meta {
                bridges: vec![bridge("br0", &[])],
            },
            Record::Add {
                bridge: "br0".into(),
                flows: vec!["priority=9 actions=drop".into()],
            },
        ];
        let snapshot = State {
            journal: 0,
            bridges: vec![bridge("br0", &["priority=5,ip actions=drop"])],
        };
        let r = replay(Recovered { snapshot, records }, 0).unwrap();
        assert_eq!(
            texts(&r.rules["br0"]),
            ["priority=9 actions=drop", "priority=0 actions=NORMAL"]
        );
        let records = vec![Record::Del {
            bridge: "br0".into(),
            all: true,
            flows: vec![],
        }];
        let snapshot = State {
            journal: 0,
            bridges: vec![bridge("br0", &["priority=5,ip actions=drop"])],
        };
        let r = replay(Recovered { snapshot, records }, 0).unwrap();
        assert!(r.rules["br0"].is_empty());
    }

    #[test]
    fn a_record_for_a_missing_bridge_is_an_error_naming_it() {
        let records = vec![Record::Add {
            bridge: "nope".into(),
            flows: vec!["priority=9 actions=drop".into()],
        }];
        let e = replay(
            Recovered {
                snapshot: State::default(),
                records,
            },
            0,
        )
        .err()
        .unwrap();
        assert!(e.contains("record 1 of 1") && e.contains("nope"), "{e}");
    }
}
