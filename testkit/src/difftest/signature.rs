//! How two outcomes differ, in words coarse enough to group packets by: which side dropped,
//! which side sent to more ports, which header fields of the frames differ.

use super::{Copy, Outcome};
use crate::packet::{self, Layout};
use std::collections::BTreeSet;

/// The signature of the difference between OVS's outcome and the switch's, `None` when they
/// agree: "ovs drops, vswitch sends", "vswitch drops, ovs sends", "ports differ (vswitch
/// lacks some)", "ports differ (vswitch adds some)", "ports differ (both ways)", "frames differ
/// in eth_dst,vlans" or "frames differ only in checksums (vswitch's are wrong)".
pub fn signature(ovs: &Outcome, vswitch: &Outcome) -> Option<String> {
    if ovs.copies == vswitch.copies {
        return None;
    }
    let (a, b) = (&ovs.copies, &vswitch.copies);
    if a.is_empty() {
        return Some("ovs drops, vswitch sends".into());
    }
    if b.is_empty() {
        return Some("vswitch drops, ovs sends".into());
    }
    let ports = |o: &Outcome| o.copies.iter().map(|c| c.port).collect::<Vec<_>>();
    let (pa, pb) = (ports(ovs), ports(vswitch));
    if pa != pb {
        let lacks = !multiset_minus(&pa, &pb).is_empty();
        let adds = !multiset_minus(&pb, &pa).is_empty();
        let how = match (lacks, adds) {
            (true, false) => "vswitch lacks some",
            (false, true) => "vswitch adds some",
            _ => "both ways",
        };
        return Some(format!("ports differ ({how})"));
    }
    let mut fields = BTreeSet::new();
    let mut wrong_sums = (false, false);
    // How many tags each side's frame has, where the tags differ: "1:0" (OVS kept one that
    // the switch removed), "2:3"... one cause of a VLAN difference each, usually.
    let mut tag_counts = BTreeSet::new();
    for (x, y) in pairs(a, b) {
        if x.frame != y.frame {
            let d = packet::diff(&x.frame, &y.frame);
            if d.contains(&"vlans") {
                let n = |f: &[u8]| packet::vlan_tags(f).len();
                tag_counts.insert(format!("{}:{}", n(&x.frame), n(&y.frame)));
            }
            fields.extend(d);
            wrong_sums.0 |= !Layout::parse(&x.frame).checksums_ok(&x.frame);
            wrong_sums.1 |= !Layout::parse(&y.frame).checksums_ok(&y.frame);
        }
    }
    if fields.iter().all(|f| f.ends_with("_csum")) {
        let whose = match wrong_sums {
            (false, true) => "vswitch's are wrong",
            (true, false) => "ovs's are wrong",
            (true, true) => "both wrong",
            (false, false) => "both right",
        };
        return Some(format!("frames differ only in checksums ({whose})"));
    }
    let fields: Vec<String> = fields
        .into_iter()
        .map(|f| match f {
            "vlans" => format!(
                "vlans (tags ovs:vswitch {})",
                tag_counts.iter().cloned().collect::<Vec<_>>().join(",")
            ),
            _ => f.to_owned(),
        })
        .collect();
    Some(format!("frames differ in {}", fields.join(",")))
}

/// Pairs OVS's copies with the switch's to the same ports. When both sent to the same ports
/// the same number of times, the k-th copy to a port on one side came from the same action as
/// the k-th on the other, so they pair in order. Otherwise: equal frames first, then,
/// repeatedly, the two left that differ in the fewest fields.
pub fn pairs<'a>(ovs: &'a [Copy], vswitch: &'a [Copy]) -> Vec<(&'a Copy, &'a Copy)> {
    if ovs.len() == vswitch.len() && ovs.iter().zip(vswitch).all(|(x, y)| x.port == y.port) {
        return ovs.iter().zip(vswitch).collect();
    }
    let mut a: Vec<&Copy> = ovs.iter().collect();
    let mut b: Vec<&Copy> = vswitch.iter().collect();
    let mut out = Vec::new();
    a.retain(|x| match b.iter().position(|y| y == x) {
        Some(j) => {
            out.push((*x, b.remove(j)));
            false
        }
        None => true,
    });
    loop {
        let best = a
            .iter()
            .enumerate()
            .flat_map(|(i, x)| {
                b.iter()
                    .enumerate()
                    .filter(|(_, y)| y.port == x.port)
                    .map(move |(j, y)| (packet::diff(&x.frame, &y.frame).len(), i, j))
            })
            .min();
        let Some((_, i, j)) = best else { break };
        out.push((a.remove(i), b.remove(j)));
    }
    out
}

/// The elements of `a` not matched by one in `b` (both sorted).
fn multiset_minus(a: &[u32], b: &[u32]) -> Vec<u32> {
    let mut rest = b.to_vec();
    a.iter()
        .filter(|x| match rest.iter().position(|y| y == *x) {
            Some(i) => {
                rest.remove(i);
                false
            }
            None => true,
        })
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::unhex;

    fn out(copies: &[(u32, &str)]) -> Outcome {
        Outcome::new(
            copies
                .iter()
                .map(|(p, h)| Copy {
                    port: *p,
                    frame: unhex(h).unwrap(),
                })
                .collect(),
            String::new(),
        )
    }

    #[test]
    fn signatures() {
        let f = "ffffffffffff0200000000010800";
        let g = "0180c2000000020000000001 8100 0005 0800";
        assert_eq!(
            signature(&out(&[(2, f), (1, f)]), &out(&[(1, f), (2, f)])),
            None
        );
        assert_eq!(
            signature(&out(&[]), &out(&[(1, f)])).unwrap(),
            "ovs drops, vswitch sends"
        );
        assert_eq!(
            signature(&out(&[(1, f), (2, f)]), &out(&[(1, f)])).unwrap(),
            "ports differ (vswitch lacks some)"
        );
        assert_eq!(
            signature(&out(&[(1, f)]), &out(&[(2, f)])).unwrap(),
            "ports differ (both ways)"
        );
        assert_eq!(
            signature(&out(&[(1, f)]), &out(&[(1, g)])).unwrap(),
            "frames differ in eth_dst,vlans (tags ovs:vswitch 0:1)"
        );
        // Two copies to one port, one of them changed: paired in the order sent.
        let h = "ffffffffffff020000000001 8100 0005 0800";
        let (i, j) = ("fe", "ff");
        let (fi, fj, hi) = (format!("{f}{i}"), format!("{f}{j}"), format!("{h}{i}"));
        assert_eq!(
            signature(&out(&[(1, &fi), (1, &fj)]), &out(&[(1, &hi), (1, &fj)])).unwrap(),
            "frames differ in vlans (tags ovs:vswitch 0:1)"
        );
        // The same two copies sent in the other order differ.
        assert!(signature(&out(&[(1, &fi), (1, &fj)]), &out(&[(1, &fj), (1, &fi)])).is_some());
    }
}
