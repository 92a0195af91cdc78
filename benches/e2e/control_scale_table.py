#!/usr/bin/env python3
"""The markdown table of run-control-scale.sh: scale.csv (size,switch,metric,value) -> stdout.

One table per size: vswitch, Open vSwitch, and the ratio "vswitch better by": OVS/vswitch for
times and memory, vswitch/OVS for rates (above 1: vswitch is better). A metric recorded more
than once (the restarts) is given as the median of its values.
"""
import csv
import statistics
import sys
from collections import defaultdict

rows = list(csv.DictReader(open(sys.argv[1])))
env = open(sys.argv[2]).read().strip() if len(sys.argv) > 2 else ""
values = defaultdict(lambda: defaultdict(list))  # (size, switch) -> metric -> [value]
sizes = []
for r in rows:
    n = int(r["size"])
    if n not in sizes:
        sizes.append(n)
    values[(n, r["switch"])][r["metric"]].append(r["value"])


def median(vals):
    if len(vals) == 1:
        return vals[0]
    nums = [num(v) for v in vals]
    nums = [v for v in nums if v is not None]
    if not nums:
        return vals[-1]
    return str(statistics.median(nums))




def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


data = defaultdict(dict)  # (size, switch) -> metric -> value (median when repeated)
for k, metrics in values.items():
    for m, vals in metrics.items():
        data[k][m] = median(vals)


def fmt(v, digits):
    if v is None:
        return "—"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if digits == 0 and abs(v) < 100 and v != int(v):
        digits = 1 if abs(v) >= 10 else 2
    return f"{v:.{digits}f}"


# (label, vswitch metric, OVS metric or None (n/a), lower is better, digits, scale)
TABLE = [
    ("rules installed", "rules", "rules", None, 0, 1),
    ("bulk install, s (`vswitchctl add-flows` / `ovs-ofctl add-flows`)", "bulk_s", "bulk_s", True, 3, 1),
    ("bulk install, rules/s", "bulk_rate", "bulk_rate", False, 0, 1),
    ("RSS idle, MiB", "rss_idle_kb", "rss_idle_kb", True, 1, 1 / 1024),
    ("RSS with the rules, MiB", "rss_rules_kb", "rss_rules_kb", True, 1, 1 / 1024),
    ("bytes per rule", "bytes_per_rule", "bytes_per_rule", True, 0, 1),
    ("single add p50, ms: REST / ovs-ofctl ¹", "rest_add_p50_ms", "cli_add_p50_ms", True, 2, 1),
    ("single add p99, ms: REST / ovs-ofctl ¹", "rest_add_p99_ms", "cli_add_p99_ms", True, 2, 1),
    ("single strict delete p50, ms: REST / ovs-ofctl ¹", "rest_del_p50_ms", "cli_del_p50_ms", True, 2, 1),
    ("single strict delete p99, ms: REST / ovs-ofctl ¹", "rest_del_p99_ms", "cli_del_p99_ms", True, 2, 1),
    ("single add p50, ms: `vswitchctl` / `ovs-ofctl` ²", "cli_add_p50_ms", "cli_add_p50_ms", True, 2, 1),
    ("single add p99, ms: `vswitchctl` / `ovs-ofctl` ²", "cli_add_p99_ms", "cli_add_p99_ms", True, 2, 1),
    ("single strict delete p50, ms: `vswitchctl` / `ovs-ofctl` ²", "cli_del_p50_ms", "cli_del_p50_ms", True, 2, 1),
    ("single strict delete p99, ms: `vswitchctl` / `ovs-ofctl` ²", "cli_del_p99_ms", "cli_del_p99_ms", True, 2, 1),
    ("changes/s, 4 clients: REST (keep-alive) / 4 `ovs-ofctl` loops ³", "rest_tput_per_s", "cli_tput_per_s", False, 0, 1),
    ("changes/s, 4 loops: `vswitchctl` / `ovs-ofctl` ³", "cli_tput_per_s", "cli_tput_per_s", False, 0, 1),
    ("restart (SIGTERM): stop, s", "restart_TERM_stop_s", None, True, 3, 1),
    ("restart (SIGTERM): exec to API up, s", "restart_TERM_api_s", None, True, 3, 1),
    ("restart (SIGTERM): exec to forwarding, s ⁴", "restart_TERM_forward_s", None, True, 3, 1),
    ("restart (kill -9): exec to API up, s", "restart_KILL_api_s", None, True, 3, 1),
    ("restart (kill -9): exec to forwarding, s ⁴", "restart_KILL_forward_s", None, True, 3, 1),
    ("rules after the restarts", "restart_KILL_rules", None, None, 0, 1),
]

print("# Control plane at scale: vswitchd vs Open vSwitch (same run)\n")
if env:
    print("```\n" + env + "\n```\n")
for n in sizes:
    vs, ovs = data[(n, "vswitch")], data[(n, "ovs")]
    for d in (vs, ovs):
        bulk = num(d.get("bulk_s"))
        rules = num(d.get("rules")) or n
        if bulk:
            d["bulk_rate"] = str(rules / bulk)
        idle, full = num(d.get("rss_idle_kb")), num(d.get("rss_rules_kb"))
        if idle is not None and full is not None:
            d["bytes_per_rule"] = str((full - idle) * 1024 / rules)
    skipped = ovs.get("skipped")
    print(f"## {n:,} rules\n")
    got = num(vs.get("rules"))
    if got is not None and got < n:
        print(
            f"{got:,.0f} rules installed on both switches: vswitchd's rule tables have a per-bridge cap "
            "(1,000,000), and the single changes need room.\n"
        )
    print("| measure | vswitch | OVS 3.1 | vswitch better by (×) |")
    print("|---|---|---|---|")
    for label, vm, om, lower, digits, scale in TABLE:
        v = num(vs.get(vm))
        v = v * scale if v is not None else None
        if vm not in vs and v is None:
            continue
        if om is None:
            o, ocell = None, "n/a"
        elif skipped:
            o, ocell = None, "skipped"
        else:
            o = num(ovs.get(om))
            o = o * scale if o is not None else None
            ocell = fmt(o, digits)
        ratio = "—"
        if lower is not None and v and o:
            r = o / v if lower else v / o
            ratio = f"{r:.2f}" if r >= 0.1 else f"{r:.2g}"
        vcell = fmt(v, digits)
        # Series cut short by --max-secs, or with errors, say so.
        for prefix, d, key in (("rest", vs, vm), ("cli", vs, vm), ("cli", ovs, om)):
            if key and key.startswith(prefix + "_") and ("_p50_" in key or "_p99_" in key):
                cut = d.get(f"{prefix}_bounded") == "true"
                errs = d.get(f"{prefix}_errors", "0")
                note = ""
                if cut:
                    note += f" (n={d.get(prefix + '_n')}, cut by --max-secs)"
                if errs not in ("0", "", None):
                    note += f" ({errs} errors)"
                if note and d is vs:
                    vcell += note
                elif note:
                    ocell += note
        # A rate below 1 per second in the window: what completed by the end, the tail too.
        for d, key, which in ((vs, vm, "v"), (ovs, om, "o")):
            if key and key.endswith("tput_per_s") and (num(d.get(key)) or 0) < 1 and d.get(key):
                tail = key[: -len("_per_s")]
                extra = (
                    f" ({d.get(tail + '_total', '?')} changes in "
                    f"{fmt(num(d.get(tail + '_total_s')), 1)} s, in-flight tail included)"
                )
                if which == "v":
                    vcell += extra
                else:
                    ocell += extra
        print(f"| {label} | {vcell} | {ocell} | {ratio} |")
    if skipped:
        print(f"\nOVS skipped at this size ({skipped}).")
    print()
print(
    "¹ OVS has no REST API: its column is `ovs-ofctl add-flow` / `del-flows --strict`, one "
    "process per change (process start and OpenFlow connection included); vswitch's is one "
    "request on a kept-alive HTTP connection.  \n"
    "² One process per change on both sides (`vswitchctl add-flow` / `del-flows --strict` vs "
    "`ovs-ofctl`), same rule shapes.  \n"
    "³ 4 concurrent clients, each adding then strictly deleting distinct rules for a fixed "
    "time; a change is one add or one delete. REST: 4 threads with a keep-alive connection "
    "each. OVS: 4 parallel loops of single `ovs-ofctl` calls (what users without a "
    "controller have; not `--bundle`).  \n"
    "⁴ Time from exec of vswitchd on its state directory until a frame injected into dummy "
    "port p1 comes out of p2 by the rule for the last installed address. OVS: n/a — "
    "OpenFlow rules do not survive an ovs-vswitchd restart (a controller installs them again)."
)
