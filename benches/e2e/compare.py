#!/usr/bin/env python3
"""Side-by-side table of a vhost_bench.sh results directory: per scenario, flow count and frame
size, each switch's Mpps and PMD cycles per packet, and the ratios vswitch / OVS-DPDK.

Mpps: median over the clean windows of all rounds (all windows when none was clean), as the
harness's aggregate.py takes it. Cycles per packet: median over all windows of the switch's
own "avg processing cycles per packet" (busy cycles / packets; the first PMD listed).

    python3 benches/e2e/compare.py RESULTS_DIR [--base ovs] [--new vswitch] > compare.md
"""
import csv
import glob
import os
import re
import statistics
import sys


def med(v):
    return statistics.median(v) if v else float('nan')


def load(results):
    """{(switch, scenario, flows, frame): {'clean': [...], 'all': [...], 'cyc': [...]}}"""
    rows = {}
    for reps in glob.glob(os.path.join(results, 'raw', 'r*', '*', 'reps.csv')):
        d = os.path.dirname(reps)
        name = os.path.basename(d)
        if '.try' in name:  # an attempt the harness re-measured
            continue
        m = re.match(r'(.+)-(normal|port|l3)-(\d+)-(\d+)$', name)
        if not m:
            continue
        key = (m.group(1), m.group(2), int(m.group(3)), int(m.group(4)))
        r = rows.setdefault(key, {'clean': [], 'all': [], 'cyc': []})
        with open(reps) as f:
            for line in csv.DictReader(f):
                mpps = int(line['b_rx_pps']) / 1e6
                r['all'].append(mpps)
                if line.get('clean', '1') == '1':
                    r['clean'].append(mpps)
        for st in glob.glob(os.path.join(d, 'pmd-stats-rep*.txt')):
            with open(st) as f:
                m2 = re.search(r'avg processing cycles per packet: ([0-9.]+)', f.read())
            if m2 and float(m2.group(1)) > 0:
                r['cyc'].append(float(m2.group(1)))
    return rows


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    results = args[0]
    base = args[args.index('--base') + 1] if '--base' in args else 'ovs'
    new = args[args.index('--new') + 1] if '--new' in args else 'vswitch'
    rows = load(results)
    configs = sorted({k[1:] for k in rows}, key=lambda k: (k[2], ['port', 'normal', 'l3'].index(k[0]), k[1]))
    print(f'| frame | scenario | flows | {base} Mpps | {new} Mpps | Mpps ratio | '
          f'{base} cycles/pkt | {new} cycles/pkt | cycles ratio | windows (clean/all) |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for sc, fl, fr in configs:
        b, n = rows.get((base, sc, fl, fr)), rows.get((new, sc, fl, fr))
        if not b or not n:
            continue
        bm = med(b['clean'] or b['all'])
        nm = med(n['clean'] or n['all'])
        bc, nc = med(b['cyc']), med(n['cyc'])
        print(f'| {fr} | {sc} | {fl} | {bm:.2f} | {nm:.2f} | **{nm / bm:.2f}** | {bc:.0f} | {nc:.0f} | '
              f'**{nc / bc:.2f}** | {len(b["clean"])}/{len(b["all"])}, {len(n["clean"])}/{len(n["all"])} |')


if __name__ == '__main__':
    main()
