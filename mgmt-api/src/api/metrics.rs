//! `GET /metrics`: the switch's counters in the Prometheus text exposition format (0.0.4).
//!
//! Names carry the `vswitch_` prefix, counters end in `_total`, and labels say which bridge,
//! port, PMD, queue, table or drop reason a sample is about.

use std::collections::BTreeMap;
use std::fmt::Write;

use ports::PortKind;
use switch_core::DropReason;

use crate::service::{Service, ServiceError};

/// The content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The datapath's drop counters by reason name, as the API and `pmd-stats-show` show them.
pub fn drop_reasons(
    datapath: &[u64; switch_core::datapath::stats::N_DROP_REASONS],
) -> BTreeMap<String, u64> {
    DropReason::ALL
        .iter()
        .map(|r| (r.name().to_owned(), datapath[*r as usize]))
        .collect()
}

/// Drop counters of one port by reason, as `dump-ports` and the metrics show them: the
/// datapath's reasons for the packets the port received, and the port's own transmit drops
/// (a full transmit queue, or for vhost-user a full guest ring).
pub fn port_drop_reasons(
    kind: PortKind,
    datapath: &[u64; switch_core::datapath::stats::N_DROP_REASONS],
    tx_dropped: u64,
) -> BTreeMap<String, u64> {
    let mut m = drop_reasons(datapath);
    let tx = match kind {
        PortKind::VhostUser | PortKind::VhostUserClient => "guest_ring_full",
        _ => "tx_queue_full",
    };
    m.insert(tx.to_owned(), tx_dropped);
    m
}

/// One metric family being written.
struct Family<'a> {
    out: &'a mut String,
    name: String,
}

impl Family<'_> {
    fn sample(&mut self, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(&self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }
}

fn family<'a>(out: &'a mut String, name: &str, kind: &str, help: &str) -> Family<'a> {
    debug_assert!(kind == "counter" || kind == "gauge");
    let name = format!("vswitch_{name}");
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    Family { out, name }
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders every metric of the switch.
pub fn render(svc: &Service) -> Result<String, ServiceError> {
    let sw = svc.switch();
    let mut out = String::new();

    // Ports.
    struct PortRow {
        bridge: String,
        port: String,
        stats: ports::PortStats,
        drops: BTreeMap<String, u64>,
    }
    let mut rows = Vec::new();
    let mut rules = Vec::new();
    for br in svc.bridges() {
        // A bridge deleted meanwhile is simply left out.
        let (Ok(drops), Ok(list), Ok(counts)) =
            (sw.port_drops(&br), sw.ports(&br), sw.rule_counts(&br))
        else {
            continue;
        };
        for p in list {
            let dp = drops.get(&p.port_no).copied().unwrap_or_default();
            rows.push(PortRow {
                bridge: br.clone(),
                port: p.name.clone(),
                stats: p.stats,
                drops: port_drop_reasons(p.kind, &dp, p.stats.tx_dropped),
            });
        }
        rules.push((br.clone(), counts));
    }
    for (i, c) in ports::PortStats::FIELDS.iter().enumerate() {
        let name = format!("port_{}_total", c.name);
        let mut f = family(&mut out, &name, "counter", c.metric);
        for r in &rows {
            let v = r.stats.values()[i];
            f.sample(&[("bridge", &r.bridge), ("port", &r.port)], v);
        }
    }
    let mut f = family(
        &mut out,
        "port_drops_total",
        "counter",
        "Packets dropped, by reason: the datapath's drops of packets received on the port, and the port's transmit drops.",
    );
    for r in &rows {
        for (reason, n) in &r.drops {
            f.sample(
                &[("bridge", &r.bridge), ("port", &r.port), ("reason", reason)],
                n,
            );
        }
    }

    // PMD threads.
    let pmds = sw.pmd_stats();
    type PmdGet = fn(&switch_core::PmdStats) -> u64;
    let pmd_counters: [(&str, &str, PmdGet); 7] = [
        (
            "pmd_packets_total",
            "Packets received by the PMD thread.",
            |s| s.packets,
        ),
        ("pmd_emc_hits_total", "Exact-match cache hits.", |s| {
            s.emc_hits
        }),
        ("pmd_megaflow_hits_total", "Megaflow cache hits.", |s| {
            s.megaflow_hits
        }),
        (
            "pmd_upcalls_total",
            "Cache misses translated through the rule tables.",
            |s| s.upcalls,
        ),
        (
            "pmd_lost_upcalls_total",
            "Upcalls whose megaflow could not be installed (flow limit).",
            |s| s.lost,
        ),
        (
            "pmd_busy_cycles_total",
            "Cycles spent in iterations that processed packets.",
            |s| s.busy_cycles,
        ),
        (
            "pmd_idle_cycles_total",
            "Cycles spent idle (polling nothing, waiting).",
            |s| s.idle_cycles,
        ),
    ];
    for (name, help, get) in pmd_counters {
        let mut f = family(&mut out, name, "counter", help);
        for p in &pmds {
            f.sample(&[("pmd", &p.pmd.to_string())], get(p));
        }
    }
    let mut f = family(
        &mut out,
        "pmd_drops_total",
        "counter",
        "Packets the PMD dropped, by reason.",
    );
    for p in &pmds {
        for r in DropReason::ALL {
            f.sample(
                &[("pmd", &p.pmd.to_string()), ("reason", r.name())],
                p.drops[r as usize],
            );
        }
    }
    let mut f = family(
        &mut out,
        "pmd_busy_percent",
        "gauge",
        "Share of the PMD's cycles spent busy, in percent.",
    );
    for p in &pmds {
        f.sample(&[("pmd", &p.pmd.to_string())], p.busy_percent());
    }
    let mut f = family(
        &mut out,
        "pmd_cycles_per_packet",
        "gauge",
        "Busy cycles per received packet.",
    );
    for p in &pmds {
        f.sample(&[("pmd", &p.pmd.to_string())], p.cycles_per_packet());
    }
    let mut f = family(
        &mut out,
        "pmd_megaflows",
        "gauge",
        "Megaflows installed in the PMD's cache.",
    );
    for p in &pmds {
        f.sample(&[("pmd", &p.pmd.to_string())], p.megaflows);
    }

    // Receive queues.
    let rxqs = sw.rxq_usage()?;
    let mut f = family(
        &mut out,
        "rxq_busy_cycles_total",
        "counter",
        "Busy cycles the PMD spent on the receive queue.",
    );
    for q in &rxqs {
        f.sample(
            &[
                ("pmd", &q.pmd.to_string()),
                ("bridge", &q.bridge),
                ("port", &q.port),
                ("queue", &q.queue.to_string()),
            ],
            q.cycles,
        );
    }
    let mut f = family(
        &mut out,
        "rxq_usage_percent",
        "gauge",
        "Share of the PMD's cycles spent on the receive queue, in percent.",
    );
    for q in &rxqs {
        f.sample(
            &[
                ("pmd", &q.pmd.to_string()),
                ("bridge", &q.bridge),
                ("port", &q.port),
                ("queue", &q.queue.to_string()),
            ],
            q.usage_percent,
        );
    }

    // Rule tables.
    let mut f = family(
        &mut out,
        "rules",
        "gauge",
        "Rules in each non-empty table of a bridge.",
    );
    for (br, counts) in &rules {
        for (table, n) in counts {
            f.sample(&[("bridge", br), ("table", &table.to_string())], n);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_escape_labels_and_families_have_help_and_type() {
        let mut out = String::new();
        let mut f = family(&mut out, "x_total", "counter", "An x.");
        f.sample(&[("port", "a\"b\\c\nd")], 3);
        f.sample(&[], 4);
        assert_eq!(
            out,
            "# HELP vswitch_x_total An x.\n# TYPE vswitch_x_total counter\n\
             vswitch_x_total{port=\"a\\\"b\\\\c\\nd\"} 3\nvswitch_x_total 4\n"
        );
    }

    #[test]
    fn transmit_drops_are_named_by_port_kind() {
        let dp = [1, 2, 0, 3, 0, 4];
        let m = port_drop_reasons(PortKind::VhostUser, &dp, 7);
        assert_eq!(m["guest_ring_full"], 7);
        assert_eq!(m["policy"], 1);
        assert_eq!(m["no_route"], 2);
        assert_eq!(m["malformed"], 3);
        assert_eq!(m["controller_queue"], 4);
        let m = port_drop_reasons(PortKind::SystemAfPacket, &dp, 7);
        assert_eq!(m["tx_queue_full"], 7);
        assert!(!m.contains_key("guest_ring_full"));
    }
}
