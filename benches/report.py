#!/usr/bin/env python3
"""Runs the flow-table micro-benchmarks ROUNDS times (default 3) and prints a Markdown table of
the median per-packet cost against the targets of issue 2.

Each criterion run already reports the median of its samples; this takes the median of those
medians across rounds, since the machine is noisy. Usage: python3 benches/report.py [ROUNDS]
"""
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH = 32
# (criterion id, label, target in ns/packet or None, target for rate in packets/s or None)
ROWS = [
    ("extract/eth_ipv4_udp", "key extraction, Eth/IPv4/UDP", 10.0, None),
    ("extract/eth_ipv6_tcp", "key extraction, Eth/IPv6/TCP", 10.0, None),
    ("extract/eth_vlan_ipv4_udp", "key extraction, Eth/VLAN/IPv4/UDP", 10.0, None),
    ("emc/hit", "EMC hit (hash + probe + flow check)", 25.0, None),
    ("megaflow_hit/1_subtables", "megaflow hit, 1 subtable", None, None),
    ("megaflow_hit/10_subtables", "megaflow hit, 10 subtables", 80.0, None),
    ("megaflow_hit/50_subtables", "megaflow hit, 50 subtables", None, None),
    ("upcall/translate_and_install", "upcall + install (1004 rules)", None, 500_000),
]


def median_ns(bench_id):
    path = os.path.join(ROOT, "target", "criterion", bench_id, "new", "estimates.json")
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"] / BATCH


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    samples = {r[0]: [] for r in ROWS}
    for i in range(rounds):
        print(f"round {i + 1}/{rounds}", file=sys.stderr)
        subprocess.run(
            ["cargo", "bench", "-q", "-p", "vswitch-benches", "--bench", "flow_table"],
            cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
        )
        for r in ROWS:
            samples[r[0]].append(median_ns(r[0]))
    print(f"| benchmark (batches of {BATCH}) | median ns/packet | rate | target | met |")
    print("|---|---|---|---|---|")
    for bid, label, ns_target, rate_target in ROWS:
        ns = statistics.median(samples[bid])
        rate = 1e9 / ns
        if ns_target is not None:
            target, met = f"≤ {ns_target:g} ns", ns <= ns_target
        elif rate_target is not None:
            target, met = f"≥ {rate_target / 1e3:g}k/s", rate >= rate_target
        else:
            target, met = "—", None
        mark = "" if met is None else ("yes" if met else "**no**")
        print(f"| {label} | {ns:.1f} | {rate / 1e6:.1f} M/s | {target} | {mark} |")


if __name__ == "__main__":
    main()
