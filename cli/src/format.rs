//! How `vswitchctl` prints the daemon's answers: the layouts Open vSwitch users know from
//! `ovs-vsctl show`, `ovs-ofctl dump-flows`/`dump-ports` and `ovs-appctl fdb/show` and
//! `dpif-netdev/pmd-stats-show`.

use serde_json::Value;
use std::fmt::Write;

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or(0)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

/// `show`: bridges with their ports and interface types.
pub fn show(bridges: &Value) -> String {
    let mut out = String::new();
    for b in bridges.as_array().into_iter().flatten() {
        let _ = writeln!(out, "    Bridge {}", s(b, "name"));
        // As ovs-vsctl shows the column (netdev or dummy).
        if let Some(t) = b["datapath_type"].as_str() {
            let _ = writeln!(out, "        datapath_type: {t}");
        }
        for p in b["ports"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "        Port {}", s(p, "name"));
            // VLAN settings belong to the Port, as ovs-vsctl shows them.
            for k in ["tag", "trunks", "vlan_mode"] {
                if let Some(v) = p["options"][k].as_str() {
                    let v = if k == "trunks" {
                        format!("[{}]", v.replace(',', ", "))
                    } else {
                        v.to_owned()
                    };
                    let _ = writeln!(out, "            {k}: {v}");
                }
            }
            let _ = writeln!(out, "            Interface {}", s(p, "name"));
            let ty = s(p, "type");
            if ty != "system" || p["ofport"].as_u64() == Some(65534) {
                // The bridge's own port: internal (a tap), or dummy on a dummy bridge.
                let ty = if p["ofport"].as_u64() == Some(65534) && ty.is_empty() {
                    "internal"
                } else {
                    ty
                };
                let _ = writeln!(out, "                type: {ty}");
            }
            if let Some(opts) = p["options"].as_object().filter(|o| !o.is_empty()) {
                let list: Vec<String> = opts
                    .iter()
                    .filter(|(k, _)| !matches!(k.as_str(), "tag" | "trunks" | "vlan_mode"))
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                    .collect();
                if !list.is_empty() {
                    let _ = writeln!(out, "                options: {{{}}}", list.join(", "));
                }
            }
            // A vhostuser socket lives in the daemon's run directory: say where.
            if ty == "vhostuser" {
                if let Some(sock) = p["socket"].as_str() {
                    let _ = writeln!(out, "                socket: {sock}");
                }
            }
            // A VM's state, and why nothing flows when nothing does.
            if let Some(status) = p["status"].as_str() {
                let _ = writeln!(out, "                status: {status}");
            }
        }
    }
    out
}

/// `dummy-sent`: one frame (hex) a line.
pub fn frames(sent: &Value) -> String {
    sent["packets"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| format!("{}\n", f.as_str().unwrap_or("")))
        .collect()
}

/// `list-br` / `list-ports`: one name a line.
pub fn names(items: &Value) -> String {
    items
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| format!("{}\n", s(i, "name")))
        .collect()
}

/// `dump-flows`.
pub fn flows(flows: &Value) -> String {
    flows
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| format!(" {}\n", s(f, "text")))
        .collect()
}

/// `dump-ports`.
pub fn ports(ports: &Value) -> String {
    let list: Vec<&Value> = ports.as_array().into_iter().flatten().collect();
    let mut out = format!("OFPST_PORT reply: {} ports\n", list.len());
    for p in list {
        let st = &p["statistics"];
        let no = match p["ofport"].as_u64() {
            Some(65534) => "LOCAL".to_string(),
            Some(n) => n.to_string(),
            None => "?".into(),
        };
        let _ = writeln!(
            out,
            "  port {no:>5} ({}): rx pkts={}, bytes={}, drop={}, errs={}",
            s(p, "name"),
            u(st, "rx_packets"),
            u(st, "rx_bytes"),
            u(st, "rx_dropped"),
            u(st, "rx_errors")
        );
        let _ = writeln!(
            out,
            "           tx pkts={}, bytes={}, drop={}, errs={}",
            u(st, "tx_packets"),
            u(st, "tx_bytes"),
            u(st, "tx_dropped"),
            u(st, "tx_errors")
        );
        if let Some(drops) = p["drops"].as_object() {
            let _ = writeln!(out, "           drop reasons: {}", nonzero(drops));
        }
        // Offloads the port's peer cannot take, done by the switch (only where it did any).
        let (segs, sums) = (u(st, "tx_segments"), u(st, "tx_checksums"));
        if segs > 0 || sums > 0 {
            let _ = writeln!(
                out,
                "           tx in software: segments={segs}, checksums={sums}"
            );
        }
    }
    out
}

/// `k=v` for the non-zero counters of a JSON object, `none` when all are zero.
fn nonzero(m: &serde_json::Map<String, Value>) -> String {
    let parts: Vec<String> = m
        .iter()
        .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
        .map(|(k, v)| format!("{k}={}", v.as_u64().unwrap_or(0)))
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

/// `fdb-show`.
pub fn fdb(rows: &Value) -> String {
    let mut out = String::from(" port  VLAN  MAC                Age\n");
    for r in rows.as_array().into_iter().flatten() {
        let port = match r["port"].as_u64() {
            Some(65534) => "LOCAL".into(),
            Some(n) => n.to_string(),
            None => "?".into(),
        };
        // As OVS: a configured entry shows "static" instead of an age.
        let age = if r["static"].as_bool() == Some(true) {
            "static".to_string()
        } else {
            u(r, "age").to_string()
        };
        let _ = writeln!(
            out,
            "{port:>5}  {:>4}  {}  {age:>3}",
            u(r, "vlan"),
            s(r, "mac"),
        );
    }
    out
}

/// `dpctl-dump-flows`: one megaflow a line, as `ovs-appctl dpctl/dump-flows` lists them.
pub fn megaflows(rows: &Value) -> String {
    let mut out = String::new();
    for r in rows.as_array().into_iter().flatten() {
        let m = s(r, "match");
        let _ = writeln!(
            out,
            "pmd {}: {}packets:{}, bytes:{}, used:{:.3}s, actions:{}",
            u(r, "pmd"),
            if m.is_empty() {
                String::new()
            } else {
                format!("{m}, ")
            },
            u(r, "packets"),
            u(r, "bytes"),
            r["used_secs"].as_f64().unwrap_or(0.0),
            s(r, "actions")
        );
    }
    out
}

/// `pmd-rxq-show`: by PMD, the ports whose receive queues it polls.
pub fn pmd_rxqs(rows: &Value) -> String {
    let mut out = String::new();
    let mut current = None;
    for r in rows.as_array().into_iter().flatten() {
        let pmd = u(r, "pmd");
        if current != Some(pmd) {
            let core = r["core"]
                .as_u64()
                .map_or_else(|| "unpinned".to_string(), |c| format!("core_id {c}"));
            let _ = writeln!(out, "pmd thread {pmd} {core}:");
            current = Some(pmd);
        }
        let queues = u(r, "rx_queues");
        let _ = writeln!(
            out,
            "  bridge: {}  port: {} ({})  rx queues: {}",
            s(r, "bridge"),
            s(r, "port"),
            u(r, "ofport"),
            if queues == 0 {
                "none (transmit only)".to_string()
            } else {
                queues.to_string()
            }
        );
        // As OVS: each queue with its share of the PMD's cycles.
        for q in r["queues"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "    queue-id: {:>2}  pmd usage: {:>3} %",
                u(q, "queue"),
                q["usage_percent"].as_f64().unwrap_or(0.0).round()
            );
        }
    }
    out
}

/// `pmd-stats-show`.
pub fn pmd_stats(pmds: &Value) -> String {
    let mut out = String::new();
    for p in pmds.as_array().into_iter().flatten() {
        let core = p["core"]
            .as_u64()
            .map_or_else(|| "unpinned".to_string(), |c| format!("core_id {c}"));
        let _ = writeln!(out, "pmd thread {} {core}:", u(p, "pmd"));
        let pkts = u(p, "packets");
        let busy = u(p, "busy_cycles");
        let idle = u(p, "idle_cycles");
        let total = (busy + idle).max(1) as f64;
        let _ = writeln!(out, "  packets received: {pkts}");
        let _ = writeln!(out, "  emc hits: {}", u(p, "emc_hits"));
        let _ = writeln!(out, "  megaflow hits: {}", u(p, "megaflow_hits"));
        let _ = writeln!(
            out,
            "  miss with success upcall: {}",
            u(p, "upcalls") - u(p, "lost").min(u(p, "upcalls"))
        );
        let _ = writeln!(out, "  miss with failed upcall: {}", u(p, "lost"));
        let _ = writeln!(out, "  megaflows installed: {}", u(p, "megaflows"));
        let drops: Vec<String> = p["drops"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
            .map(|(k, v)| format!("{k}={}", v.as_u64().unwrap_or(0)))
            .collect();
        let _ = writeln!(
            out,
            "  drops: {}",
            if drops.is_empty() {
                "0".into()
            } else {
                drops.join(", ")
            }
        );
        let _ = writeln!(
            out,
            "  idle cycles: {idle} ({:.2}%)",
            100.0 * idle as f64 / total
        );
        let _ = writeln!(
            out,
            "  processing cycles: {busy} ({:.2}%)",
            100.0 * busy as f64 / total
        );
        if pkts > 0 {
            let _ = writeln!(
                out,
                "  avg processing cycles per packet: {:.2} ({busy}/{pkts})",
                busy as f64 / pkts as f64
            );
        }
        let batches = u(p, "rx_batches");
        if batches > 0 {
            let _ = writeln!(
                out,
                "  avg packets per rx batch: {:.2} ({pkts}/{batches})",
                pkts as f64 / batches as f64
            );
        }
    }
    out
}

/// `list-mirrors`: one mirror a line, with its selection and output.
pub fn mirrors(items: &Value) -> String {
    let mut out = String::new();
    for m in items.as_array().into_iter().flatten() {
        let mut parts = vec![s(m, "name").to_owned()];
        for k in ["select_src_port", "select_dst_port", "select_vlan"] {
            if let Some(l) = m[k].as_array().filter(|l| !l.is_empty()) {
                let vals: Vec<String> = l
                    .iter()
                    .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                    .collect();
                parts.push(format!("{}={}", k.replace('_', "-"), vals.join(",")));
            }
        }
        if m["select_all"].as_bool() == Some(true) {
            parts.push("select-all".into());
        }
        parts.push(format!("output-port={}", s(m, "output_port")));
        let _ = writeln!(out, "{}", parts.join(" "));
    }
    out
}

/// `get-controller`: one target per line, as `ovs-vsctl get-controller` prints them; with
/// `status`, each followed by whether it is connected, its roles and its last error.
pub fn controllers(v: &Value, status: bool) -> String {
    let mut out = String::new();
    for c in v["controllers"].as_array().into_iter().flatten() {
        let _ = write!(out, "{}", s(c, "target"));
        if status {
            let connected = c["is_connected"].as_bool() == Some(true);
            let _ = write!(out, " is_connected={connected}");
            let roles: Vec<&str> = c["roles"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if !roles.is_empty() {
                let _ = write!(out, " role={}", roles.join(","));
            }
            if let Some(e) = c["last_error"].as_str() {
                let _ = write!(out, " last_error=\"{e}\"");
            }
        }
        out.push('\n');
    }
    out
}

/// `list-netns`: namespace, interface inside it, switch port.
pub fn attached(items: &Value) -> String {
    let mut out = String::new();
    for a in items.as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{} {} port={}",
            s(a, "netns"),
            s(a, "ifname"),
            s(a, "port")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn show_lists_bridges_ports_and_types() {
        let v = json!([{"name": "br0", "ports": [
            {"name": "br0", "ofport": 65534, "type": "internal", "options": {}},
            {"name": "eth1", "ofport": 1, "type": "system", "options": {"mode": "afpacket"}},
            {"name": "vhu0", "ofport": 2, "type": "vhostuser", "options": {},
             "socket": "/run/vswitch/vhu0"}
        ]}]);
        let out = show(&v);
        assert!(out.contains("    Bridge br0\n"));
        assert!(out.contains("        Port eth1\n            Interface eth1\n"));
        assert!(out.contains("type: internal"));
        assert!(out.contains("options: {mode=afpacket}"));
        let mf = megaflows(&json!([
            {"pmd": 0, "match": "in_port=1,dl_dst=02:00:00:00:00:0b", "actions": "output:2",
             "packets": 10, "bytes": 640, "used_secs": 0.5}
        ]));
        assert_eq!(
            mf,
            "pmd 0: in_port=1,dl_dst=02:00:00:00:00:0b, packets:10, bytes:640, used:0.500s, \
             actions:output:2\n"
        );
        let rxqs = pmd_rxqs(&json!([
            {"pmd": 0, "core": 1, "bridge": "br0", "port": "vhu0", "ofport": 2, "rx_queues": 1},
            {"pmd": 1, "core": null, "bridge": "br0", "port": "vhu0", "ofport": 2, "rx_queues": 0}
        ]));
        assert_eq!(
            rxqs,
            "pmd thread 0 core_id 1:\n  bridge: br0  port: vhu0 (2)  rx queues: 1\n\
             pmd thread 1 unpinned:\n  bridge: br0  port: vhu0 (2)  rx queues: none (transmit only)\n"
        );
        assert!(out.contains("type: vhostuser\n                socket: /run/vswitch/vhu0"));
    }

    #[test]
    fn show_tells_dummy_bridges_and_ports() {
        let v = json!([{"name": "br1", "datapath_type": "dummy", "ports": [
            {"name": "d1", "ofport": 1, "type": "dummy", "options": {}},
            {"name": "br1", "ofport": 65534, "type": "dummy", "options": {}}
        ]}]);
        assert_eq!(
            show(&v),
            "    Bridge br1\n        datapath_type: dummy\n\
             \x20       Port d1\n            Interface d1\n                type: dummy\n\
             \x20       Port br1\n            Interface br1\n                type: dummy\n"
        );
    }

    #[test]
    fn ports_fdb_and_pmd_stats_layouts() {
        let p = json!([{"name": "eth1", "ofport": 1, "statistics": {"rx_packets": 5, "rx_bytes": 300, "tx_packets": 4}}]);
        let out = ports(&p);
        assert!(out.starts_with("OFPST_PORT reply: 1 ports\n"));
        assert!(out.contains("port     1 (eth1): rx pkts=5, bytes=300, drop=0, errs=0"));
        assert!(out.contains("tx pkts=4"));
        let f = fdb(&json!([{"port": 2, "vlan": 0, "mac": "02:00:00:00:00:01", "age": 3}]));
        assert!(f.contains("    2     0  02:00:00:00:00:01    3"), "{f}");
        let s = pmd_stats(&json!([{"pmd": 0, "core": 1, "packets": 10, "emc_hits": 8,
            "megaflow_hits": 1, "upcalls": 1, "lost": 0, "busy_cycles": 5000, "idle_cycles": 5000,
            "megaflows": 1, "rx_batches": 4, "drops": {"policy": 2, "no_port": 0}}]));
        assert!(s.contains("pmd thread 0 core_id 1:"));
        assert!(s.contains("emc hits: 8"));
        assert!(s.contains("drops: policy=2"));
        assert!(s.contains("avg processing cycles per packet: 500.00"));
        assert!(s.contains("avg packets per rx batch: 2.50 (10/4)"), "{s}");
    }

    #[test]
    fn drop_reasons_and_queue_usage() {
        let p = json!([{"name": "p1", "ofport": 1, "statistics": {},
            "drops": {"policy": 3, "no_route": 0, "malformed": 1, "tx_queue_full": 0}},
            {"name": "p2", "ofport": 2, "statistics": {}, "drops": {"policy": 0}}]);
        let out = ports(&p);
        assert!(
            out.contains("           drop reasons: malformed=1, policy=3\n"),
            "{out}"
        );
        assert!(out.contains("           drop reasons: none\n"), "{out}");
        let rxqs = pmd_rxqs(
            &json!([{"pmd": 0, "core": null, "bridge": "br0", "port": "p1",
            "ofport": 1, "rx_queues": 2, "queues": [
                {"queue": 0, "cycles": 10, "usage_percent": 12.4},
                {"queue": 1, "cycles": 90, "usage_percent": 80.6}]}]),
        );
        assert!(
            rxqs.contains("    queue-id:  0  pmd usage:  12 %\n"),
            "{rxqs}"
        );
        assert!(
            rxqs.contains("    queue-id:  1  pmd usage:  81 %\n"),
            "{rxqs}"
        );
    }
}
