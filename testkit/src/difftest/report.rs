//! The words a differential run prints: minimised reproducers and the per-class counts.

use std::fmt::{self, Write as _};

use super::{KnownDifference, Outcome, Stats};
use crate::flowgen::TestPacket;
use crate::packet::{self, hex};

/// A disagreement reduced to the rules it needs.
#[derive(Clone, Debug)]
pub struct Reproducer {
    pub signature: String,
    pub seed: u64,
    /// The rules left after minimising (`ovs-ofctl` syntax).
    pub flows: Vec<String>,
    pub packet: TestPacket,
    pub ovs: Outcome,
    pub vswitch: Outcome,
}

impl fmt::Display for Reproducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "=== {} (seed {})", self.signature, self.seed)?;
        writeln!(
            f,
            "replay by hand: ovs-ofctl add-flows BR FLOWS; ovs-appctl ofproto/trace BR in_port={0} HEX; \
             vswitchctl add-flows BR FLOWS; vswitchctl trace BR in_port={0} --packet HEX",
            self.packet.in_port
        )?;
        writeln!(f, "flows:")?;
        for r in &self.flows {
            writeln!(f, "  {r}")?;
        }
        let p = &self.packet;
        writeln!(f, "packet: in_port={} {}", p.in_port, p.what)?;
        writeln!(f, "  {}", hex(&p.frame))?;
        for (side, o) in [("ovs", &self.ovs), ("vswitch", &self.vswitch)] {
            if o.copies.is_empty() {
                writeln!(f, "{side}: drop")?;
            }
            for c in &o.copies {
                writeln!(f, "{side}: port {}: {}", c.port, hex(&c.frame))?;
            }
        }
        write!(f, "{}", differences(&self.ovs, &self.vswitch))?;
        writeln!(f, "--- ovs trace:\n{}", self.ovs.text.trim_end())?;
        writeln!(f, "--- vswitch trace:\n{}", self.vswitch.text.trim_end())
    }
}

/// The differing fields of the frames both send to the same port, with both values.
fn differences(ovs: &Outcome, vswitch: &Outcome) -> String {
    let mut s = String::new();
    for (a, b) in super::signature::pairs(&ovs.copies, &vswitch.copies) {
        if a.frame == b.frame {
            continue;
        }
        let (fa, fb) = (packet::fields(&a.frame), packet::fields(&b.frame));
        for name in packet::diff(&a.frame, &b.frame) {
            let v = |fs: &[(&str, String)]| {
                fs.iter()
                    .find(|x| x.0 == name)
                    .map_or("(none)".to_owned(), |x| x.1.clone())
            };
            let _ = writeln!(
                s,
                "port {}: {name}: ovs {}, vswitch {}",
                a.port,
                v(&fa),
                v(&fb)
            );
        }
    }
    s
}

impl Stats {
    /// The counts: agreement, each known difference (with its reason), each disagreement
    /// signature, install disagreements and failed traces.
    pub fn summary(&self, known: &[KnownDifference]) -> String {
        let mut s = String::new();
        let known_total: usize = self.known.values().sum();
        let _ = writeln!(
            s,
            "{} seeds, {} packets: {} agree, {} in documented differences, {} disagree, {} failed; agreement {:.2} % (outside documented differences)",
            self.seeds,
            self.packets,
            self.agree,
            known_total,
            self.disagree.values().sum::<usize>(),
            self.errors.values().sum::<usize>(),
            100.0 * self.agreement()
        );
        for k in known {
            if let Some(n) = self.known.get(k.name) {
                let _ = writeln!(s, "  documented  {n:5}  {}: {}", k.name, k.reason);
            }
        }
        for (sig, n) in &self.disagree {
            let _ = writeln!(s, "  DISAGREE    {n:5}  {sig}");
        }
        for (k, rules) in &self.install {
            let _ = writeln!(s, "  INSTALL     {:5}  {k}:", rules.len());
            for r in rules.iter().take(5) {
                let _ = writeln!(s, "      {r}");
            }
        }
        for (k, n) in &self.errors {
            let _ = writeln!(s, "  FAILED      {n:5}  {k}");
        }
        s
    }
}
