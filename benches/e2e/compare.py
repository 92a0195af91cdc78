#!/usr/bin/env python3
"""Side-by-side table of a vhost_bench.sh results directory: per scenario, flow count and frame
size, each switch's Mpps and PMD cycles per packet, and the ratios vswitch / OVS-DPDK.

Mpps: median over the clean windows of all rounds (all windows when none was clean), as the
harness's aggregate.py takes it. Cycles per packet: median over all windows of the switch's
own "avg processing cycles per packet" (busy cycles / packets; the first PMD listed).

With the mode probe's log (xcore.log, written by run-vhost.sh), every window is also given the
VM's mode while it ran, from the median cross-core round trip of the probe's samples inside
the window: fast (< 170 ns; about 110 ns when the two vCPUs share a cache) or slow (230-410 ns
seen). A second table then compares the switches within each mode that both met. The window
times come from the files the harness writes when a window closes; they are saved in
modes.csv, so the table can be made again from a copy.

When the run has the testpmd patch panel (DPDK's vhost PMD forwarding A -> B with no lookup;
`port` scenario only), a third table sets each switch's cycles per packet beside it, within
each mode: the cost of the two copies alone on this machine.

    python3 benches/e2e/compare.py RESULTS_DIR [--base ovs] [--new vswitch] [--ref testpmd] > compare.md
"""
import csv
import glob
import os
import re
import statistics
import sys

BANDS = ('fast', 'slow')


def med(v):
    return statistics.median(v) if v else float('nan')


def band(ns):
    if ns is None:
        return None
    return 'fast' if ns < 170 else 'slow'


def rep_stats(d):
    """{rep: path} of the pmd-stats files the harness wrote after each window of run dir d."""
    return {re.search(r'rep(\d+)\.txt$', st).group(1): st
            for st in glob.glob(os.path.join(d, 'pmd-stats-rep*.txt'))}


def window_modes(results):
    """{(run dir relative to raw, rep): probe ns or None}: those saved in modes.csv, plus those
    of runs not in it yet, made from the stats files' times and xcore.log (then saved too)."""
    saved = os.path.join(results, 'modes.csv')
    modes = {}
    if os.path.exists(saved):
        with open(saved) as f:
            modes = {(r['run'], r['rep']): (float(r['probe_ns']) if r['probe_ns'] else None)
                     for r in csv.DictReader(f)}
    log = os.path.join(results, 'xcore.log')
    if not os.path.exists(log):
        return modes
    with open(log) as f:
        probe = [tuple(map(float, l.split()[:2])) for l in f if len(l.split()) >= 2]
    known = {run for run, _ in modes}
    for d in glob.glob(os.path.join(results, 'raw', 'r*', '*')):
        run = os.path.relpath(d, os.path.join(results, 'raw'))
        if run in known:
            continue
        # Written 0.3 s after the window closed.
        ends = {rep: os.path.getmtime(st) - 0.3 for rep, st in rep_stats(d).items()}
        if not ends:
            continue
        times = sorted(ends.values())
        gaps = [b - a for a, b in zip(times, times[1:])]
        # Windows follow each other with ~0.4 s of hooks between them.
        length = med(gaps) - 0.4 if gaps else 5.0
        for rep, end in ends.items():
            inside = [ns for t, ns in probe if end - length <= t / 1000 <= end]
            modes[(run, rep)] = med(inside) if inside else None
    with open(saved, 'w') as f:
        w = csv.writer(f)
        w.writerow(['run', 'rep', 'probe_ns'])
        for (run, rep), ns in sorted(modes.items()):
            w.writerow([run, rep, '' if ns is None else f'{ns:.0f}'])
    return modes


def load(results):
    """{(switch, scenario, flows, frame): {'clean': [...], 'all': [...], 'cyc': [...],
    'by_mode': {band: [(mpps, cycles)]}}}"""
    modes = window_modes(results)
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
        r = rows.setdefault(key, {'clean': [], 'all': [], 'cyc': [], 'by_mode': {}})
        cyc = {}
        for rep, st in rep_stats(d).items():
            with open(st) as f:
                m2 = re.search(r'avg processing cycles per packet: ([0-9.]+)', f.read())
            if m2 and float(m2.group(1)) > 0:
                cyc[rep] = float(m2.group(1))
        r['cyc'] += cyc.values()
        run = os.path.relpath(d, os.path.join(results, 'raw'))
        with open(reps) as f:
            for line in csv.DictReader(f):
                mpps = int(line['b_rx_pps']) / 1e6
                r['all'].append(mpps)
                if line.get('clean', '1') == '1':
                    r['clean'].append(mpps)
                b = band(modes.get((run, line['rep'])))
                if b:
                    r['by_mode'].setdefault(b, []).append((mpps, cyc.get(line['rep'])))
    return rows


def pairs(rows, base, new):
    """(scenario, flows, frame, base row, new row) for every configuration both switches ran,
    in table order."""
    configs = sorted({k[1:] for k in rows}, key=lambda k: (k[2], ['port', 'normal', 'l3'].index(k[0]), k[1]))
    for sc, fl, fr in configs:
        b, n = rows.get((base, sc, fl, fr)), rows.get((new, sc, fl, fr))
        if b and n:
            yield sc, fl, fr, b, n


def mode_median(row, mode):
    """(windows, Mpps, cycles/packet) of row's windows in mode."""
    w = row['by_mode'].get(mode, []) if row else []
    return len(w), med([x[0] for x in w]), med([x[1] for x in w if x[1]])


def floor_table(rows, base, new, ref):
    """Each switch's cycles per packet beside the patch panel's, within each mode."""
    keys = sorted((k for k in rows if k[0] == ref), key=lambda k: (k[3], k[2]))
    lines = []
    for _, sc, fl, fr in keys:
        for mode in BANDS:
            rn, rm, rc = mode_median(rows[(ref, sc, fl, fr)], mode)
            if not rn:
                continue
            cells = []
            for sw in (base, new):
                n, m, c = mode_median(rows.get((sw, sc, fl, fr)), mode)
                cells += [f'{m:.2f}', f'{c:.0f}', f'**{c / rc:.2f}**'] if n else ['–', '–', '–']
            lines.append(f'| {fr} | {sc} | {fl} | {mode} | {rm:.2f} | {rc:.0f} | ' + ' | '.join(cells) + ' |')
    if not lines:
        return
    print()
    print(f'The copy floor: {ref} as a vhost-user patch panel (DPDK\'s vhost PMD, io forwarding, '
          'no parsing or lookup), busy cycles per packet from its own counters, beside each '
          'switch within the same mode; ratios are the switch\'s cycles over the panel\'s:')
    print()
    print(f'| frame | scenario | flows | mode | {ref} Mpps | {ref} cycles/pkt | {base} Mpps | '
          f'{base} cycles/pkt | {base} / {ref} | {new} Mpps | {new} cycles/pkt | {new} / {ref} |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|')
    for line in lines:
        print(line)


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    results = args[0]
    base = args[args.index('--base') + 1] if '--base' in args else 'ovs'
    new = args[args.index('--new') + 1] if '--new' in args else 'vswitch'
    ref = args[args.index('--ref') + 1] if '--ref' in args else 'testpmd'
    rows = load(results)
    print(f'| frame | scenario | flows | {base} Mpps | {new} Mpps | Mpps ratio | '
          f'{base} cycles/pkt | {new} cycles/pkt | cycles ratio | windows (clean/all) |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for sc, fl, fr, b, n in pairs(rows, base, new):
        bm = med(b['clean'] or b['all'])
        nm = med(n['clean'] or n['all'])
        bc, nc = med(b['cyc']), med(n['cyc'])
        print(f'| {fr} | {sc} | {fl} | {bm:.2f} | {nm:.2f} | **{nm / bm:.2f}** | {bc:.0f} | {nc:.0f} | '
              f'**{nc / bc:.2f}** | {len(b["clean"])}/{len(b["all"])}, {len(n["clean"])}/{len(n["all"])} |')
    if not any(r['by_mode'] for r in rows.values()):
        return
    print()
    print('Within one mode of the VM (cross-core round trip of the probe during the window: '
          'fast < 170 ns, slow otherwise); medians of the windows each switch ran in that mode:')
    print()
    print(f'| frame | scenario | flows | mode | windows {base}/{new} | {base} Mpps | {new} Mpps | '
          f'Mpps ratio | {base} cycles/pkt | {new} cycles/pkt | cycles ratio |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    for sc, fl, fr, b, n in pairs(rows, base, new):
        for mode in BANDS:
            (bn, bm, bc), (nn, nm, nc) = mode_median(b, mode), mode_median(n, mode)
            if not bn or not nn:
                continue
            print(f'| {fr} | {sc} | {fl} | {mode} | {bn}/{nn} | {bm:.2f} | {nm:.2f} | '
                  f'**{nm / bm:.2f}** | {bc:.0f} | {nc:.0f} | **{nc / bc:.2f}** |')
    floor_table(rows, base, new, ref)


if __name__ == '__main__':
    main()
