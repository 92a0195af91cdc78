#!/usr/bin/env bash
# OpenFlow: vswitchd beside a private Open vSwitch 3.1 (ovs-vswitchd, dummy datapath) in the
# same run, each with a bridge br0 of two dummy ports (1, 2), driven over OpenFlow 1.3:
#  - flow installs per second: `ovs-ofctl -O OpenFlow13 add-flows` of N distinct flows
#    (`priority=100,ip,nw_dst=10.a.b.c,actions=output:2`, one FLOW_MOD each, a barrier at the
#    end) and the same file with `--bundle` (one atomic transaction), into an empty table;
#  - reactive flow setup: the minimal controller `of_reactive` (benches/src/bin/of_reactive.rs)
#    makes every new flow a table miss answered with FLOW_MOD + PACKET_OUT, and counts new
#    flows per second (both switches connect to it with `set-controller`, fail mode secure).
# Repetitions alternate which switch goes first; the table gives medians and the ratio
# vswitch/OVS of the medians. Every step runs under a time limit; every process and temporary
# directory is removed on exit. Never touches a system Open vSwitch: every OVS file and socket
# lives in a temporary directory.
#
#   cargo build --release -p cli -p vswitch-benches --bin vswitchd --bin vswitchctl --bin of_reactive
#   benches/e2e/run-openflow.sh [--flows 100000] [--reps 3] [--secs 5] [--window 32] [--bin-dir DIR]
#
# Results: benches/e2e/results/<date>-openflow/{openflow.csv,openflow.md}; RESULTS_DIR
# overrides the directory.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FLOWS=100000 REPS=3 SECS=5 WINDOW=32
BIN_DIR=${VSWITCH_BIN_DIR:-$ROOT/target/release}
while (( $# )); do
    case $1 in
        --flows) FLOWS=$2; shift 2;;
        --reps) REPS=$2; shift 2;;
        --secs) SECS=$2; shift 2;;
        --window) WINDOW=$2; shift 2;;
        --bin-dir) BIN_DIR=$2; shift 2;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;;
        *) echo "unknown arg $1" >&2; exit 2;;
    esac
done
VSWITCHD=$BIN_DIR/vswitchd CTL=$BIN_DIR/vswitchctl RX=$BIN_DIR/of_reactive
for b in "$VSWITCHD" "$CTL" "$RX"; do
    [[ -x $b ]] || { echo "missing $b: cargo build --release -p cli -p vswitch-benches --bin vswitchd --bin vswitchctl --bin of_reactive (or --bin-dir)" >&2; exit 1; }
done
for t in ovsdb-tool ovsdb-server ovs-vswitchd ovs-vsctl ovs-ofctl ovs-appctl; do
    command -v "$t" >/dev/null || { echo "missing $t: apt-get install -y openvswitch-switch openvswitch-common" >&2; exit 1; }
done
SCHEMA=/usr/share/openvswitch/vswitch.ovsschema

results=${RESULTS_DIR:-$ROOT/benches/e2e/results/$(date -u +%Y%m%d-%H%M)-openflow}
mkdir -p "$results"
work=$(mktemp -d /tmp/vsw-openflow.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
URL=http://127.0.0.1:$port
ovsdir=$work/ovs
vs_pid="" ovsdb_pid="" ovs_pid=""

gone() { local st; st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0; [[ -z $st || $st == Z ]]; }
stop_pid() { # PID: SIGTERM, wait at most 30 s, then SIGKILL.
    local p=$1
    [[ -n $p ]] || return 0
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 3000); do gone "$p" && break; sleep 0.01; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}
cleanup() {
    set +e
    stop_pid "$vs_pid"; stop_pid "$ovs_pid"; stop_pid "$ovsdb_pid"
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ns() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
ctl() { timeout 60 "$CTL" --url "$URL" "$@"; }
csv() { echo "$1,$2,$3,$4" >> "$results/openflow.csv"; }   # rep,switch,metric,value

# ---- vswitchd ------------------------------------------------------------------------------
cat > "$work/vs.toml" <<TOML
[api]
listen = "127.0.0.1:$port"
[datapath]
pmd_cores = []
max_flows = 2000000
run_dir = "$work/run"
TOML
"$VSWITCHD" --config "$work/vs.toml" --state-dir "$work/state" >> "$work/vswitchd.log" 2>&1 &
vs_pid=$!
for _ in $(seq 600); do ctl list-br >/dev/null 2>&1 && break; sleep 0.1; done
ctl add-br br0 datapath_type=dummy
ctl add-port br0 p1 type=dummy ofport_request=1
ctl add-port br0 p2 type=dummy ofport_request=2
ctl set-fail-mode br0 secure
for _ in $(seq 300); do [[ -S $work/run/br0.mgmt ]] && break; sleep 0.1; done
VS_OF=unix:$work/run/br0.mgmt

# ---- private Open vSwitch ------------------------------------------------------------------
ovsenv() { env OVS_RUNDIR="$ovsdir" OVS_DBDIR="$ovsdir" OVS_LOGDIR="$ovsdir" OVS_SYSCONFDIR="$ovsdir" "$@"; }
vsctl() { ovsenv timeout 60 ovs-vsctl --db="unix:$ovsdir/db.sock" --timeout=30 "$@"; }
daemon_args() { echo "--pidfile=$ovsdir/$1.pid --unixctl=$ovsdir/$1.ctl --log-file=$ovsdir/$1.log --no-chdir -vconsole:off"; }
mkdir -p "$ovsdir"
ovsenv ovsdb-tool create "$ovsdir/conf.db" "$SCHEMA"
# shellcheck disable=SC2046
env OVS_RUNDIR="$ovsdir" OVS_DBDIR="$ovsdir" OVS_LOGDIR="$ovsdir" OVS_SYSCONFDIR="$ovsdir" \
    ovsdb-server "$ovsdir/conf.db" --remote="punix:$ovsdir/db.sock" $(daemon_args ovsdb-server) \
    > "$ovsdir/ovsdb-server.out" 2>&1 < /dev/null &
ovsdb_pid=$!
for _ in $(seq 300); do [[ -S $ovsdir/db.sock ]] && break; sleep 0.1; done
vsctl --no-wait init
# shellcheck disable=SC2046
env OVS_RUNDIR="$ovsdir" OVS_DBDIR="$ovsdir" OVS_LOGDIR="$ovsdir" OVS_SYSCONFDIR="$ovsdir" \
    ovs-vswitchd "unix:$ovsdir/db.sock" --enable-dummy=override --disable-system $(daemon_args ovs-vswitchd) \
    > "$ovsdir/ovs-vswitchd.out" 2>&1 < /dev/null &
ovs_pid=$!
for _ in $(seq 300); do ovsenv ovs-appctl -t "$ovsdir/ovs-vswitchd.ctl" version >/dev/null 2>&1 && break; sleep 0.1; done
vsctl add-br br0 -- set bridge br0 datapath_type=dummy fail_mode=secure \
    -- add-port br0 p1 -- set interface p1 type=dummy ofport_request=1 \
    -- add-port br0 p2 -- set interface p2 type=dummy ofport_request=2
for _ in $(seq 300); do [[ -S $ovsdir/br0.mgmt ]] && break; sleep 0.1; done
OVS_OF=unix:$ovsdir/br0.mgmt

ofctl() { timeout 600 ovs-ofctl -O OpenFlow13 "$@"; }
target_of() { [[ $1 == vswitch ]] && echo "$VS_OF" || echo "$OVS_OF"; }

# ---- the flows -----------------------------------------------------------------------------
python3 - "$FLOWS" > "$work/flows.txt" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"priority=100,ip,nw_dst=10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255},actions=output:2")
PY

install() { # SWITCH REP MODE(single|bundle)
    local t; t=$(target_of "$1")
    ofctl del-flows "$t"
    local extra=()
    [[ $3 == bundle ]] && extra=(--bundle)
    local t0 t1
    t0=$(now_ns)
    ofctl "${extra[@]}" add-flows "$t" "$work/flows.txt"
    t1=$(now_ns)
    local n
    n=$(ofctl dump-aggregate "$t" | sed -n 's/.*flow_count=\([0-9]*\).*/\1/p')
    [[ $n == "$FLOWS" ]] || { echo "$1 has $n flows after $3 add-flows of $FLOWS" >&2; exit 1; }
    local s; s=$(secs "$t0" "$t1")
    csv "$2" "$1" "install_${3}_flows_per_sec" "$(awk -v n="$FLOWS" -v s="$s" 'BEGIN { printf "%.0f", n / s }')"
    ofctl del-flows "$t"
}

reactive() { # SWITCH REP
    local cport; cport=$(free_port)
    timeout $((SECS + 60)) "$RX" --listen "127.0.0.1:$cport" --secs "$SECS" --window "$WINDOW" \
        > "$work/rx.json" 2> "$work/rx.err" &
    local rx=$!
    sleep 0.2
    if [[ $1 == vswitch ]]; then ctl set-controller br0 "tcp:127.0.0.1:$cport"; else vsctl set-controller br0 "tcp:127.0.0.1:$cport"; fi
    wait "$rx" || { echo "of_reactive against $1 failed: $(cat "$work/rx.err")" >&2; exit 1; }
    if [[ $1 == vswitch ]]; then ctl del-controller br0; else vsctl del-controller br0; fi
    csv "$2" "$1" reactive_flows_per_sec "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["flows_per_sec"])' "$work/rx.json")"
    ofctl del-flows "$(target_of "$1")"
}

echo "rep,switch,metric,value" > "$results/openflow.csv"
for rep in $(seq "$REPS"); do
    order=(vswitch ovs); (( rep % 2 == 0 )) && order=(ovs vswitch)
    for sw in "${order[@]}"; do
        echo "rep $rep: $sw" >&2
        install "$sw" "$rep" single
        install "$sw" "$rep" bundle
        reactive "$sw" "$rep"
    done
done

python3 - "$results" "$FLOWS" "$REPS" <<'PY'
import csv, statistics, sys
d, flows, reps = sys.argv[1], sys.argv[2], sys.argv[3]
vals = {}
for r in csv.DictReader(open(f"{d}/openflow.csv")):
    vals.setdefault((r["metric"], r["switch"]), []).append(float(r["value"]))
rows = [("install_single_flows_per_sec", f"add-flows of {flows} flows, one FLOW_MOD each (flows/s)"),
        ("install_bundle_flows_per_sec", f"--bundle add-flows of {flows} flows (flows/s)"),
        ("reactive_flows_per_sec", "reactive setup: table miss -> FLOW_MOD + PACKET_OUT (new flows/s)")]
out = [f"OpenFlow 1.3, dummy datapaths, medians of {reps} repetitions (same run)", "",
       "| | vswitch | OVS 3.1 | vswitch/OVS |", "|---|---|---|---|"]
for key, label in rows:
    v = statistics.median(vals.get((key, "vswitch"), [0]))
    o = statistics.median(vals.get((key, "ovs"), [0]))
    out.append(f"| {label} | {v:,.0f} | {o:,.0f} | {v / o if o else 0:.2f}x |")
open(f"{d}/openflow.md", "w").write("\n".join(out) + "\n")
print("\n".join(out))
PY
