#!/usr/bin/env bash
# Flow setup and memory of vswitchd (issue 6, items 3 and 4):
#  - rule install rate over REST: `vswitchctl add-flows` of 100k rules (one request), timed;
#  - flow setup rate: the harness's generator (../shared/bench/lib/vhost_gen.sh, one testpmd
#    playing both VMs over vhost-user) sends 100k distinct UDP flows at full speed into a bridge
#    whose rules make every flow its own megaflow (a rule on the exact source address is
#    consulted first, so every megaflow keeps nw_src); the PMD's upcall counter is sampled
#    every 0.05 s or so and the rate is the number of upcalls over the time they took;
#  - resident memory (VmRSS) of vswitchd: idle with a bridge and two vhost ports, with the 100k
#    rules, and with the 100k megaflows.
# Needs root, dpdk-testpmd and hugepages (installs dpdk-dev). Not a test: CI does not run it.
#
#   benches/e2e/run-control.sh [--flows 100000] [--rounds 3]
# Results: benches/e2e/results/<date>-control/control.md
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FLOWS=100000 ROUNDS=3
while (( $# )); do
    case $1 in
        --flows) FLOWS=$2; shift 2;;
        --rounds) ROUNDS=$2; shift 2;;
        *) echo "unknown arg $1" >&2; exit 2;;
    esac
done
source "$ROOT/benches/e2e/lib.sh"
e2e_prepare dpdk-testpmd:dpdk-dev
VSWITCHD=$ROOT/target/release/vswitchd
CTL=$ROOT/target/release/vswitchctl
results=${RESULTS_DIR:-$ROOT/benches/e2e/results/$(date +%Y%m%d-%H%M)-control}
mkdir -p "$results"
work=$(mktemp -d /tmp/vsw-control.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ctl() { "$CTL" --url "http://127.0.0.1:$port" "$@"; }
pid=""
cleanup() {
    [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    pkill -f "anchorgen" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }

start_daemon() {
    rm -rf "$work/state" "$work/run"
    cat > "$work/vs.toml" <<TOML
[api]
listen = "127.0.0.1:$port"
[datapath]
pmd_cores = [1]
run_dir = "$work/run"
TOML
    "$VSWITCHD" --config "$work/vs.toml" --state-dir "$work/state" > "$work/vswitchd.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do ctl list-br >/dev/null 2>&1 && break; sleep 0.1; done
    ctl add-br br0
    ctl add-port br0 vhA type=vhostuserclient vhost-server-path="$work/a.sock" ofport_request=1
    ctl add-port br0 vhB type=vhostuserclient vhost-server-path="$work/b.sock" ofport_request=2
    sleep 1
}
stop_daemon() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

# 100k rules, each on its own destination address (as a routing table would be).
python3 - "$FLOWS" > "$work/rules.txt" <<'PY'
import sys
n = int(sys.argv[1])
for i in range(n):
    print(f"priority=100,ip,nw_dst=10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255},actions=output:2")
PY

echo "round,rss_idle_kb,rules,add_flows_s,rules_per_s,rss_rules_kb,megaflows,setup_s,upcalls_per_s,rss_megaflows_kb" > "$results/control.csv"
for (( r=1; r<=ROUNDS; r++ )); do
    # --- rules over REST, then memory with them ---
    start_daemon
    rss_idle=$(rss_kb)
    t0=$(date +%s.%N)
    ctl add-flows br0 "$work/rules.txt" >/dev/null
    t1=$(date +%s.%N)
    n_rules=$(ctl dump-flows br0 | grep -c priority=100 || true)
    sleep 1
    rss_rules=$(rss_kb)
    stop_daemon

    # --- flow setup: every flow becomes a megaflow ---
    start_daemon
    ctl del-flows br0
    ctl add-flow br0 "priority=20,ip,in_port=1,nw_src=10.254.254.254,actions=drop"
    ctl add-flow br0 "priority=10,in_port=1,actions=output:2"
    (cd "$SHARED" && bash lib/vhost_gen.sh --sock-a "$work/a.sock" --sock-b "$work/b.sock" \
        --frontend server --flows "$FLOWS" --reps 1 --duration 12 --warmup 0 \
        --out "$work/gen" > "$work/gen.out" 2>&1) &
    gen=$!
    : > "$work/samples.txt"
    for _ in $(seq 500); do   # at most ~30 s
        up=$(ctl pmd-stats-show | awk '/miss with success upcall:/ {s += $5} END {print s + 0}')
        echo "$(date +%s.%N) $up" >> "$work/samples.txt"
        if ! kill -0 $gen 2>/dev/null; then break; fi
        sleep 0.05
    done
    wait $gen || true
    megaflows=$(ctl dpctl-dump-flows br0 | grep -c "in_port" || true)
    rss_mf=$(rss_kb)
    stop_daemon
    # Setup time: from the first sample with upcalls to the first with 99 % of the flows.
    read -r setup rate < <(python3 - "$work/samples.txt" "$FLOWS" <<'PY'
import sys
s = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if l.strip()]
n = int(sys.argv[2])
start = next((i for i, (_, u) in enumerate(s) if u > 0), None)
end = next((i for i, (_, u) in enumerate(s) if u >= 0.99 * n), None)
if start is None or end is None or start == 0:
    print("nan nan")
else:
    # The upcalls began after the sample before `start`; count from there.
    t0, u0 = s[start - 1]
    t1, u1 = s[end]
    print(f"{t1 - t0:.2f} {(u1 - u0) / (t1 - t0):.0f}")
PY
)
    add_s=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
    rps=$(python3 -c "print(f'{$FLOWS / ($t1 - $t0):.0f}')")
    echo "$r,$rss_idle,$n_rules,$add_s,$rps,$rss_rules,$megaflows,$setup,$rate,$rss_mf" >> "$results/control.csv"
    echo "round $r: idle ${rss_idle} kB; $n_rules rules in ${add_s} s (${rps}/s), ${rss_rules} kB; $megaflows megaflows, setup ${setup} s (${rate} upcalls/s), ${rss_mf} kB"
done

python3 - "$results/control.csv" > "$results/control.md" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
def med(k):
    v = [float(r[k]) for r in rows if r[k] not in ("", "nan")]
    return statistics.median(v) if v else float("nan")
print(f"Medians of {len(rows)} rounds.\n")
print("| measure | value |")
print("|---|---|")
print(f"| REST `add-flows` of {rows[0]['rules']} rules | {med('add_flows_s'):.2f} s = **{med('rules_per_s'):,.0f} rules/s** |")
print(f"| flow setup, {rows[0]['megaflows']} megaflows | {med('setup_s'):.2f} s = **{med('upcalls_per_s'):,.0f} upcalls/s** |")
print(f"| vswitchd RSS idle (bridge, 2 vhost ports) | {med('rss_idle_kb') / 1024:.1f} MiB |")
print(f"| vswitchd RSS with {rows[0]['rules']} rules | {med('rss_rules_kb') / 1024:.1f} MiB |")
print(f"| vswitchd RSS with {rows[0]['megaflows']} megaflows | {med('rss_megaflows_kb') / 1024:.1f} MiB |")
PY
cat "$results/control.md"
echo "results: $results"
