//! Differential testing of flow semantics: the same rule sets installed in a reference
//! switch (a private Open vSwitch, [`crate::ovs`]) and in the switch under test, the same
//! packets traced in both, and per packet the copies that leave compared (port and exact
//! bytes, as a multiset: the order of a flood is not compared; no copy is a drop).
//!
//! Each disagreement gets a [`signature`] (which side dropped, which ports differ, which header
//! fields differ). [`KnownDifference`]s, a table the test keeps, name documented differences:
//! they are counted apart and not held against the agreement figure. The first packet of each
//! signature and kind of packet (a few a signature) is minimised into a [`Reproducer`]: rules
//! dropped one at a time while the same disagreement persists, then their match fields and
//! actions; one reproducer is kept per shape of what is left. Rules one side refuses are
//! reported as install disagreements and left out of that seed's set.

mod report;
mod signature;

pub use report::Reproducer;
pub use signature::{pairs, signature};

use std::collections::BTreeMap;

use crate::flowgen::{self, TestPacket};
use crate::ovs::odp::split_top_level;
use crate::ovs::PrivateOvs;

/// A frame leaving a switch by a port.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Copy {
    pub port: u32,
    pub frame: Vec<u8>,
}

/// What a switch did with one packet.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The copies that left, sorted by port; copies to one port stay in the order they were
    /// sent, so the k-th on one switch answers to the k-th on the other (no copy: dropped).
    pub copies: Vec<Copy>,
    /// The switch's trace, for reports.
    pub text: String,
}

impl Outcome {
    /// An outcome of these copies (in the order sent) and trace text.
    pub fn new(mut copies: Vec<Copy>, text: String) -> Outcome {
        copies.sort_by_key(|c| c.port);
        Outcome { copies, text }
    }
}

/// A switch whose flow semantics are compared.
pub trait Switch {
    /// Its name in reports.
    fn name(&self) -> String;
    /// Replaces every rule by `flows` (`ovs-ofctl` syntax); `Err` with the switch's message
    /// when it refuses them (the rules in place are then unspecified).
    fn install(&mut self, flows: &[String]) -> Result<(), String>;
    /// What the switch does with `frame` arriving on OpenFlow port `in_port`.
    fn trace(&mut self, in_port: u32, frame: &[u8]) -> Result<Outcome, String>;
}

impl Switch for PrivateOvs {
    fn name(&self) -> String {
        "ovs".into()
    }

    fn install(&mut self, flows: &[String]) -> Result<(), String> {
        self.replace_flows(flows)
    }

    fn trace(&mut self, in_port: u32, frame: &[u8]) -> Result<Outcome, String> {
        let t = PrivateOvs::trace(self, in_port, frame)?;
        let copies = t
            .copies
            .into_iter()
            .map(|(port, frame)| Copy { port, frame })
            .collect();
        Ok(Outcome::new(copies, t.text))
    }
}

/// The shape of a rule set: the names of its match fields and actions, without values
/// ("in_port,resubmit(port) output"), to tell one cause of a disagreement from another.
pub fn rule_shape(flows: &[String]) -> String {
    let mut words = std::collections::BTreeSet::new();
    for f in flows {
        let (head, actions) = f.split_once("actions=").unwrap_or((f, ""));
        for m in head.split(',').filter(|m| !m.is_empty()) {
            let name = m.split('=').next().unwrap_or_default();
            if name != "table" && name != "priority" {
                words.insert(name.to_owned());
            }
        }
        for a in split_top_level(actions) {
            let name = match a.split_once('(') {
                // resubmit(,T) and resubmit(P,T) differ in what they do with in_port.
                Some((n, args)) if args.starts_with(',') => format!("{n}()"),
                Some((n, _)) => format!("{n}(port)"),
                None => a.split(':').next().unwrap_or_default().to_owned(),
            };
            words.insert(name);
        }
    }
    words.into_iter().collect::<Vec<_>>().join(" ")
}

/// How many disagreements of one signature are minimised at most (each with another kind of
/// packet); a result is kept when its rules have a shape ([`rule_shape`]) not kept yet.
pub const MINIMISED_PER_SIGNATURE: usize = 6;

/// A packet's kind for telling reproducers apart: its protocol and its tagging, from
/// [`TestPacket::what`] ("tcp4 1q(vid=0,pcp=6) ..." -> "tcp4 priority-tagged").
fn packet_kind(what: &str) -> String {
    let mut words = what.split_whitespace();
    let proto = words.next().unwrap_or_default();
    let proto = proto.split('(').next().unwrap_or_default();
    let tags: Vec<&str> = words
        .filter(|w| w.starts_with("1q(") || w.starts_with("ad("))
        .collect();
    let tagging = match tags[..] {
        [] => "untagged",
        [t] if t.contains("vid=0,") => "priority-tagged",
        [_] => "tagged",
        _ => "double-tagged",
    };
    format!("{proto} {tagging}")
}

/// One packet's comparison, for [`KnownDifference`] predicates.
pub struct Case<'a> {
    /// The rule set installed in both (those both accepted).
    pub flows: &'a [String],
    pub packet: &'a TestPacket,
    pub ovs: &'a Outcome,
    pub vswitch: &'a Outcome,
    /// The disagreement's [`signature`].
    pub signature: &'a str,
}

/// A documented difference between the two switches: disagreements it `applies` to are
/// counted under its name and excluded from the agreement figure.
pub struct KnownDifference {
    pub name: &'static str,
    /// Why the switches differ there (documentation, printed with the counts).
    pub reason: &'static str,
    pub applies: fn(&Case) -> bool,
}

/// The counts of a run (one seed or many, see [`Stats::add`]).
#[derive(Debug, Default)]
pub struct Stats {
    pub seeds: usize,
    pub packets: usize,
    pub agree: usize,
    /// Per known difference's name.
    pub known: BTreeMap<&'static str, usize>,
    /// Per signature.
    pub disagree: BTreeMap<String, usize>,
    /// Rules only one side accepts: "refused by SIDE only" -> the rules and messages.
    pub install: BTreeMap<String, Vec<String>>,
    /// Traces that failed ("SIDE: FIRST LINE") -> count; the first full message is kept
    /// in `error_examples`.
    pub errors: BTreeMap<String, usize>,
    pub error_examples: BTreeMap<String, String>,
    /// Disagreements minimised, one per signature and shape of the rules left, in the order
    /// found (see [`MINIMISED_PER_SIGNATURE`]).
    pub reproducers: Vec<Reproducer>,
}

impl Stats {
    /// Whether everything outside the known differences agreed.
    pub fn clean(&self) -> bool {
        self.disagree.is_empty() && self.install.is_empty() && self.errors.is_empty()
    }

    /// The share of packets that agreed, out of those no known difference covers.
    pub fn agreement(&self) -> f64 {
        let considered = self.packets - self.known.values().sum::<usize>();
        match considered {
            0 => 1.0,
            n => self.agree as f64 / n as f64,
        }
    }

    /// Adds another run's counts (reproducers of signatures already seen are kept).
    pub fn add(&mut self, o: Stats) {
        self.seeds += o.seeds;
        self.packets += o.packets;
        self.agree += o.agree;
        for (k, v) in o.known {
            *self.known.entry(k).or_default() += v;
        }
        for (k, v) in o.disagree {
            *self.disagree.entry(k).or_default() += v;
        }
        for (k, v) in o.install {
            self.install.entry(k).or_default().extend(v);
        }
        for (k, v) in o.errors {
            *self.errors.entry(k).or_default() += v;
        }
        for (k, v) in o.error_examples {
            self.error_examples.entry(k).or_insert(v);
        }
        self.reproducers.extend(o.reproducers);
    }
}

/// Compares `ovs` (the reference) and `vswitch` (under test) over seeded rule sets and
/// packets.
pub struct DiffTest<'a> {
    pub ovs: &'a mut dyn Switch,
    pub vswitch: &'a mut dyn Switch,
    pub known: &'a [KnownDifference],
    pub config: flowgen::Config,
    /// Per signature, the kinds of packet already minimised in this run (minimising is the
    /// slow part) and the shapes of the reproducers kept.
    minimised: BTreeMap<String, (Vec<String>, Vec<String>)>,
}

impl<'a> DiffTest<'a> {
    pub fn new(
        ovs: &'a mut dyn Switch,
        vswitch: &'a mut dyn Switch,
        known: &'a [KnownDifference],
        config: flowgen::Config,
    ) -> DiffTest<'a> {
        DiffTest {
            ovs,
            vswitch,
            known,
            config,
            minimised: BTreeMap::new(),
        }
    }

    /// Runs one seed: its rule set, then `packets` of its packets.
    pub fn run_seed(&mut self, seed: u64, packets: usize) -> Stats {
        let mut st = Stats {
            seeds: 1,
            ..Stats::default()
        };
        let rules: Vec<String> = flowgen::rule_set(seed, &self.config)
            .iter()
            .map(|r| r.to_string())
            .collect();
        let flows = match self.install_agreed(&rules, &mut st) {
            Ok(f) => f,
            Err(e) => {
                st.count_error("install".into(), format!("seed {seed}"), e);
                return st;
            }
        };
        for p in flowgen::packets(seed, packets, &self.config) {
            st.packets += 1;
            let (ovs, vswitch) = match self.trace_both(&p) {
                Ok(o) => o,
                Err((side, e)) => {
                    let context = format!(
                        "seed {seed}, in_port={} {}\n{}",
                        p.in_port,
                        p.what,
                        crate::packet::hex(&p.frame)
                    );
                    st.count_error(side, context, e);
                    continue;
                }
            };
            let Some(sig) = signature(&ovs, &vswitch) else {
                st.agree += 1;
                continue;
            };
            let case = Case {
                flows: &flows,
                packet: &p,
                ovs: &ovs,
                vswitch: &vswitch,
                signature: &sig,
            };
            if let Some(k) = self.known.iter().find(|k| (k.applies)(&case)) {
                *st.known.entry(k.name).or_default() += 1;
                continue;
            }
            *st.disagree.entry(sig.clone()).or_default() += 1;
            // One signature may have several causes; packets of another kind more likely show
            // another one.
            let (kinds, _) = self.minimised.entry(sig.clone()).or_default();
            let kind = packet_kind(&p.what);
            if kinds.len() < MINIMISED_PER_SIGNATURE && !kinds.contains(&kind) {
                kinds.push(kind);
                let r = self.minimise(seed, &flows, &p, &sig, (ovs, vswitch));
                let shape = rule_shape(&r.flows);
                let (_, shapes) = self.minimised.entry(sig).or_default();
                if !shapes.contains(&shape) {
                    shapes.push(shape);
                    st.reproducers.push(r);
                }
            }
        }
        st
    }

    /// Installs `rules` in both; the rules one side refuses are found one by one, recorded in
    /// `st.install`, and left out. Returns the rules installed.
    fn install_agreed(&mut self, rules: &[String], st: &mut Stats) -> Result<Vec<String>, String> {
        let a = self.ovs.install(rules);
        let b = self.vswitch.install(rules);
        if a.is_ok() && b.is_ok() {
            return Ok(rules.to_vec());
        }
        let mut kept = Vec::new();
        for r in rules {
            let one = std::slice::from_ref(r);
            let a = self.ovs.install(one);
            let b = self.vswitch.install(one);
            let line = |e: &String| e.lines().next().unwrap_or_default().to_owned();
            match (a, b) {
                (Ok(()), Ok(())) => kept.push(r.clone()),
                (Err(e), Ok(())) => st
                    .install
                    .entry(format!("refused by {} only", self.ovs.name()))
                    .or_default()
                    .push(format!("{r}\n    {}", line(&e))),
                (Ok(()), Err(e)) => st
                    .install
                    .entry(format!("refused by {} only", self.vswitch.name()))
                    .or_default()
                    .push(format!("{r}\n    {}", line(&e))),
                (Err(e), Err(_)) => st
                    .install
                    .entry("refused by both (a generator bug)".into())
                    .or_default()
                    .push(format!("{r}\n    {}", line(&e))),
            }
        }
        self.install_both(&kept)?;
        Ok(kept)
    }

    fn install_both(&mut self, flows: &[String]) -> Result<(), String> {
        self.ovs
            .install(flows)
            .map_err(|e| format!("{}: {e}", self.ovs.name()))?;
        self.vswitch
            .install(flows)
            .map_err(|e| format!("{}: {e}", self.vswitch.name()))
    }

    fn trace_both(&mut self, p: &TestPacket) -> Result<(Outcome, Outcome), (String, String)> {
        let a = self
            .ovs
            .trace(p.in_port, &p.frame)
            .map_err(|e| (self.ovs.name(), e))?;
        let b = self
            .vswitch
            .trace(p.in_port, &p.frame)
            .map_err(|e| (self.vswitch.name(), e))?;
        Ok((a, b))
    }

    /// Drops rules one at a time while the disagreement keeps its signature, then the match
    /// fields and actions of the rules left, one at a time; reinstalls `flows` afterwards.
    fn minimise(
        &mut self,
        seed: u64,
        flows: &[String],
        p: &TestPacket,
        sig: &str,
        mut outcomes: (Outcome, Outcome),
    ) -> Reproducer {
        let mut keep = flows.to_vec();
        let mut i = 0;
        while i < keep.len() {
            let mut trial = keep.clone();
            trial.remove(i);
            if self.still(&trial, p, sig) {
                keep = trial;
            } else {
                i += 1;
            }
        }
        for r in 0..keep.len() {
            let mut t = 0;
            while let Some(smaller) = without_part(&keep[r], t) {
                let mut trial = keep.clone();
                trial[r] = smaller;
                if self.still(&trial, p, sig) {
                    keep = trial;
                } else {
                    t += 1;
                }
            }
        }
        // The outcomes of the minimal set itself (the last trial may have been a failure).
        if self.install_both(&keep).is_ok() {
            if let Ok(o) = self.trace_both(p) {
                outcomes = o;
            }
        }
        let _ = self.install_both(flows);
        Reproducer {
            signature: sig.to_owned(),
            seed,
            flows: keep,
            packet: p.clone(),
            ovs: outcomes.0,
            vswitch: outcomes.1,
        }
    }

    /// Whether, with `flows` in both, `p` still gives a disagreement of signature `sig`.
    fn still(&mut self, flows: &[String], p: &TestPacket, sig: &str) -> bool {
        self.install_both(flows).is_ok()
            && matches!(self.trace_both(p), Ok(o) if signature(&o.0, &o.1).as_deref() == Some(sig))
    }
}

/// `rule` (`table=T,priority=P,MATCH...,actions=ACTION...`) without its `n`th removable part:
/// the match fields (not table nor priority) first, then the actions; `None` past the last.
fn without_part(rule: &str, n: usize) -> Option<String> {
    let (head, actions) = rule.split_once("actions=")?;
    let head: Vec<&str> = head.split(',').filter(|f| !f.is_empty()).collect();
    let mut actions = split_top_level(actions);
    actions.retain(|a| *a != "drop");
    let fields: Vec<usize> = (0..head.len())
        .filter(|&i| !head[i].starts_with("table=") && !head[i].starts_with("priority="))
        .collect();
    let mut head = head;
    if n < fields.len() {
        head.remove(fields[n]);
    } else if n - fields.len() < actions.len() {
        actions.remove(n - fields.len());
    } else {
        return None;
    }
    let actions = match actions.is_empty() {
        true => "drop".to_owned(),
        false => actions.join(","),
    };
    head.push("");
    Some(format!("{}actions={actions}", head.join(",")))
}

impl Stats {
    /// Counts a failure under `side` and the shape of its message's first line (digits
    /// replaced by `N`, so one kind of failure is one line); keeps the first whole message
    /// with its `context`.
    fn count_error(&mut self, side: String, context: String, e: String) {
        let first = e.lines().next().unwrap_or_default();
        let shape: String = first
            .chars()
            .map(|c| if c.is_ascii_digit() { 'N' } else { c })
            .take(120)
            .collect();
        let key = format!("{side}: {shape}");
        *self.errors.entry(key.clone()).or_default() += 1;
        self.error_examples
            .entry(key)
            .or_insert_with(|| format!("{context}\n{e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A make-believe switch: every installed rule's `output:N` actions send the frame to N
    /// (match fields are ignored); it refuses rules containing `refuse`, and ignores the
    /// actions of rules containing `blind`.
    struct Fake {
        name: &'static str,
        refuse: &'static str,
        blind: &'static str,
        flows: Vec<String>,
    }

    impl Switch for Fake {
        fn name(&self) -> String {
            self.name.into()
        }
        fn install(&mut self, flows: &[String]) -> Result<(), String> {
            if let Some(f) = flows.iter().find(|f| f.contains(self.refuse)) {
                return Err(format!("refused: {f}"));
            }
            self.flows = flows.to_vec();
            Ok(())
        }
        fn trace(&mut self, _in_port: u32, frame: &[u8]) -> Result<Outcome, String> {
            let copies = self
                .flows
                .iter()
                .filter(|f| !f.contains(self.blind))
                .flat_map(|f| f.split([',', '=']).map(str::to_owned))
                .filter_map(|a| a.strip_prefix("output:")?.parse().ok())
                .map(|port| Copy {
                    port,
                    frame: frame.to_vec(),
                })
                .collect();
            Ok(Outcome::new(copies, self.flows.join("\n")))
        }
    }

    fn fake(name: &'static str, refuse: &'static str, blind: &'static str) -> Fake {
        Fake {
            name,
            refuse,
            blind,
            flows: Vec::new(),
        }
    }

    #[test]
    fn install_disagreements_and_minimised_reproducers() {
        let mut ovs = fake("ovs", "no rule refuses this", "no rule has this");
        // The switch refuses mod_nw_ttl, and forgets what a rule with dec_ttl does.
        let mut vswitch = fake("vswitch", "mod_nw_ttl", "dec_ttl");
        let mut t = DiffTest::new(&mut ovs, &mut vswitch, &[], flowgen::Config::default());
        let mut total = Stats::default();
        for seed in 0..40 {
            total.add(t.run_seed(seed, 5));
        }
        let refused = &total.install["refused by vswitch only"];
        assert!(
            refused.iter().all(|r| r.contains("mod_nw_ttl")),
            "{refused:?}"
        );
        assert!(!total.disagree.is_empty() && total.errors.is_empty());
        for r in &total.reproducers {
            // Left: a rule with dec_ttl and an output (and another output when the switch
            // must still send something); no match field (the fake ignores them), no other
            // action.
            assert!(r.flows.len() <= 2, "{r}");
            assert_eq!(
                r.flows.iter().filter(|f| f.contains("dec_ttl")).count(),
                1,
                "{r}"
            );
            for f in &r.flows {
                let (head, actions) = f.split_once("actions=").unwrap();
                assert_eq!(head.matches(',').count(), 2, "table, priority only: {r}");
                assert!(
                    actions
                        .split(',')
                        .all(|a| a == "dec_ttl" || a.starts_with("output:")),
                    "{r}"
                );
            }
        }
        assert!(!total.clean());
    }

    #[test]
    fn known_differences_are_counted_apart() {
        let mut ovs = fake("ovs", "no rule refuses this", "no rule has this");
        let mut vswitch = fake("vswitch", "no rule refuses this", "dec_ttl");
        let known = [KnownDifference {
            name: "dec_ttl",
            reason: "the fake forgets it",
            applies: |c| c.flows.iter().any(|f| f.contains("dec_ttl")),
        }];
        let mut t = DiffTest::new(&mut ovs, &mut vswitch, &known, flowgen::Config::default());
        let mut total = Stats::default();
        for seed in 0..40 {
            total.add(t.run_seed(seed, 5));
        }
        assert!(total.known["dec_ttl"] > 0);
        assert!(total.clean(), "{}", total.summary(&known));
        assert_eq!(total.agreement(), 1.0);
        assert!(total.summary(&known).contains("the fake forgets it"));
    }

    #[test]
    fn parts_of_a_rule_come_off_one_at_a_time() {
        let r = "table=1,priority=5,tcp,in_port=2,actions=resubmit(,2),output:3";
        let parts: Vec<String> = (0..).map_while(|n| super::without_part(r, n)).collect();
        assert_eq!(
            parts,
            [
                "table=1,priority=5,in_port=2,actions=resubmit(,2),output:3",
                "table=1,priority=5,tcp,actions=resubmit(,2),output:3",
                "table=1,priority=5,tcp,in_port=2,actions=output:3",
                "table=1,priority=5,tcp,in_port=2,actions=resubmit(,2)",
            ]
        );
        assert_eq!(
            super::without_part("table=0,priority=1,actions=normal", 0).unwrap(),
            "table=0,priority=1,actions=drop"
        );
        assert_eq!(
            super::without_part("table=0,priority=1,actions=drop", 0),
            None
        );
    }

    #[test]
    fn rule_shapes() {
        let f =
            |v: &[&str]| super::rule_shape(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            f(&[
                "table=0,priority=1,ip,in_port=2,actions=resubmit(3,1),output:2",
                "table=1,priority=0,actions=resubmit(,2)"
            ]),
            "in_port ip output resubmit() resubmit(port)"
        );
        assert_eq!(f(&["table=0,priority=1,actions=drop"]), "drop");
    }

    #[test]
    fn packet_kinds() {
        let k = super::packet_kind;
        assert_eq!(
            k("tcp4 1q(vid=0,pcp=6) 02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff"),
            "tcp4 priority-tagged"
        );
        assert_eq!(
            k("arp(op=1) ad(vid=2,pcp=0) 1q(vid=1,pcp=0) a > b"),
            "arp double-tagged"
        );
        assert_eq!(k("udp6 a > b"), "udp6 untagged");
    }
}
