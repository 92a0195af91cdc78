//! Reading what `ovs-appctl` prints: the datapath actions of an `ofproto/trace`, and the
//! datapath port numbers of `dpif/show`.

use std::collections::BTreeMap;

/// The text after "Datapath actions: " in a trace. A trace that recirculates has several
/// such lines; the generator's actions never recirculate, so that is an error.
pub fn datapath_actions(trace: &str) -> Result<&str, String> {
    let lines: Vec<&str> = trace
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Datapath actions: "))
        .collect();
    match lines[..] {
        [one] => Ok(one),
        [] => Err("no \"Datapath actions:\" line".into()),
        _ => Err(format!(
            "{} \"Datapath actions:\" lines (recirculation)",
            lines.len()
        )),
    }
}

/// The (MAC, VLAN) entries a trace says NORMAL learnt ("-> learned that 02:00:00:00:00:01 is
/// on port p1 in VLAN 0").
pub fn learnt(trace: &str) -> Vec<(String, u16)> {
    let mut out: Vec<(String, u16)> = Vec::new();
    for l in trace.lines() {
        let entry = l.trim().strip_prefix("-> learned that ").and_then(|rest| {
            let (mac, rest) = rest.split_once(' ')?;
            let vlan = rest.rsplit_once("in VLAN ")?.1.trim().parse().ok()?;
            Some((mac.to_owned(), vlan))
        });
        if let Some(e) = entry.filter(|e| !out.contains(e)) {
            out.push(e);
        }
    }
    out
}

/// The OpenFlow port number of each datapath port of `bridge`, from `ovs-appctl dpif/show`
/// lines such as `    p1 1/3: (dummy)` (name, OpenFlow port / datapath port).
pub fn odp_ports(dpif_show: &str, bridge: &str) -> BTreeMap<u32, u32> {
    let mut map = BTreeMap::new();
    let mut in_bridge = false;
    for line in dpif_show.lines() {
        let indent = line.len() - line.trim_start().len();
        let l = line.trim();
        if indent <= 2 && l.ends_with(':') {
            in_bridge = l.trim_end_matches(':') == bridge;
            continue;
        }
        if !in_bridge {
            continue;
        }
        let nums = l
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.strip_suffix(':'));
        if let Some((of, odp)) = nums.and_then(|n| n.split_once('/')) {
            if let (Ok(of), Ok(odp)) = (of.parse(), odp.parse()) {
                map.insert(odp, of);
            }
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_dpif_show() {
        let show = "dummy@ovs-dummy: hit:0 missed:0\n  br0:\n    br0 65534/100: (dummy-internal)\n    p1 1/3: (dummy)\n    p2 2/2: (dummy)\n  br1:\n    br1 65534/101: (dummy-internal)\n";
        let m = odp_ports(show, "br0");
        assert_eq!(
            m.into_iter().collect::<Vec<_>>(),
            [(2, 2), (3, 1), (100, 65534)]
        );
    }

    #[test]
    fn reads_what_normal_learnt() {
        let t = "    NORMAL\n     -> learned that 0a:00:00:00:00:05 is on port p2 in VLAN 3\n     -> forwarding to learned port\n";
        assert_eq!(learnt(t), [("0a:00:00:00:00:05".to_owned(), 3)]);
    }

    #[test]
    fn finds_the_one_actions_line() {
        let t = "Flow: ...\n\nFinal flow: unchanged\nMegaflow: recirc_id=0\nDatapath actions: 100,2,3\n";
        assert_eq!(datapath_actions(t).unwrap(), "100,2,3");
        assert!(datapath_actions("Flow: x\n").is_err());
        assert!(datapath_actions("Datapath actions: 1\nDatapath actions: 2\n").is_err());
    }
}
