#!/usr/bin/env bash
# Control plane at scale: vswitchd beside a private Open vSwitch 3.1 (ovs-vswitchd, dummy
# datapath) in the same run, at each size of installed rules
# (`priority=100,ip,nw_dst=10.a.b.c,actions=output:2`, distinct /32s):
#  - bulk install: `vswitchctl add-flows br0 FILE` vs `ovs-ofctl add-flows br0 FILE`, timed;
#  - RSS (VmRSS) of each daemon idle and with the rules, and bytes per rule;
#  - single add and strict delete latency (p50/p99) of rules outside the installed set
#    (11.x.y.z): over REST (vswitch, one keep-alive connection), and per process
#    (`vswitchctl add-flow`/`del-flows --strict` vs `ovs-ofctl add-flow`/`del-flows --strict`,
#    process start included). OVS has no REST API: its column in the REST rows is ovs-ofctl;
#  - sustained single changes per second, 4 concurrent clients, each adding then strictly
#    deleting distinct rules for a fixed time: REST (4 threads, each with its own keep-alive
#    connection) vs 4 parallel loops of single ovs-ofctl add-flow/del-flows, and 4 parallel
#    loops of single vswitchctl calls vs the same ovs-ofctl loops;
#  - restart to forwarding (vswitchd only): SIGTERM (and separately kill -9) the daemon, start
#    it again on the same state directory, and time from exec until the REST API answers and
#    until a frame injected into dummy port p1 comes out of p2 by the rule for the last
#    installed address. OVS: n/a (OpenFlow rules do not survive an ovs-vswitchd restart; a
#    controller installs them again).
# The client is the Rust binary `flow_churn` (benches/src/bin/flow_churn.rs). Every step runs
# under a time limit; every process and temporary directory is removed on exit. Needs
# openvswitch-switch (ovs-vswitchd, ovsdb-server, ovs-vsctl, ovs-ofctl); never touches a system
# Open vSwitch: every OVS file and socket lives in a temporary directory.
#
#   cargo build --release -p cli -p vswitch-benches --bin vswitchd --bin vswitchctl --bin flow_churn
#   benches/e2e/run-control-scale.sh [--sizes 1000,10000,100000,1000000] [--ovs-max N]
#       [--samples 200] [--cli-samples 50] [--secs 5] [--max-secs 60] [--bin-dir DIR]
#       [--restarts 3] [--no-restart-kill]
#
# --ovs-max N skips OVS at sizes above N ("skipped" in the table; its bulk install of 1M rules
# took 20 s here). --max-secs bounds each latency series (fewer samples if reached, said
# in the table). --restarts R: restarts of each kind per size (the table gives medians).
# Binaries: --bin-dir, else $VSWITCH_BIN_DIR, else $ROOT/target/release.
# Results: benches/e2e/results/<date>-control-scale/{scale.csv,scale.md} (and raw JSON);
# RESULTS_DIR overrides the directory.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SIZES=1000,10000,100000,1000000 OVS_MAX=1000000 SAMPLES=200 CLI_SAMPLES=50 SECS=5 MAX_SECS=60
BIN_DIR=${VSWITCH_BIN_DIR:-$ROOT/target/release}
RESTART_KILL=1 RESTARTS=3
# vswitchd's rule tables hold at most 1,000,000 rules per bridge (flow-table's
# DEFAULT_MAX_RULES; `datapath.max_flows` does not raise it): a size at the cap is installed
# with HEADROOM rules fewer, so that the single changes (at most 4 at once) fit. Both switches
# get the same rules; the table's "rules installed" row shows the count.
RULE_CAP=${VSWITCH_RULE_CAP:-1000000} HEADROOM=8
while (( $# )); do
    case $1 in
        --sizes) SIZES=$2; shift 2;;
        --ovs-max) OVS_MAX=$2; shift 2;;
        --samples) SAMPLES=$2; shift 2;;
        --cli-samples) CLI_SAMPLES=$2; shift 2;;
        --secs) SECS=$2; shift 2;;
        --max-secs) MAX_SECS=$2; shift 2;;
        --bin-dir) BIN_DIR=$2; shift 2;;
        --restarts) RESTARTS=$2; shift 2;;
        --no-restart-kill) RESTART_KILL=0; shift;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0;;
        *) echo "unknown arg $1" >&2; exit 2;;
    esac
done
VSWITCHD=$BIN_DIR/vswitchd CTL=$BIN_DIR/vswitchctl FC=$BIN_DIR/flow_churn
for b in "$VSWITCHD" "$CTL" "$FC"; do
    [[ -x $b ]] || { echo "missing $b: cargo build --release -p cli -p vswitch-benches --bin vswitchd --bin vswitchctl --bin flow_churn (or --bin-dir)" >&2; exit 1; }
done
for t in ovsdb-tool ovsdb-server ovs-vswitchd ovs-vsctl ovs-ofctl ovs-appctl; do
    command -v "$t" >/dev/null || { echo "missing $t: apt-get install -y openvswitch-switch openvswitch-common" >&2; exit 1; }
done
SCHEMA=/usr/share/openvswitch/vswitch.ovsschema

results=${RESULTS_DIR:-$ROOT/benches/e2e/results/$(date -u +%Y%m%d-%H%M)-control-scale}
mkdir -p "$results/raw"
work=$(mktemp -d /tmp/vsw-cscale.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$port
ovsdir=$work/ovs
vs_pid="" ovsdb_pid="" ovs_pid=""

gone() { # PID: it has exited (a zombie not yet reaped counts as exited)
    local st
    st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
    [[ -z $st || $st == Z ]]
}
stop_pid() { # PID [SIGNAL]: signal it, wait at most 30 s (polling every 10 ms), then SIGKILL.
    local p=$1 sig=${2:-TERM}
    [[ -n $p ]] || return 0
    kill -"$sig" "$p" 2>/dev/null || true
    for _ in $(seq 3000); do gone "$p" && break; sleep 0.01; done
    kill -KILL "$p" 2>/dev/null || true
    # (bash reports a child that died of SIGKILL as "Killed": expected after kill -9.)
    wait "$p" 2>/dev/null || true
}
cleanup() {
    set +e
    stop_pid "$vs_pid"; vs_pid=""
    stop_pid "$ovs_pid"; ovs_pid=""
    stop_pid "$ovsdb_pid"; ovsdb_pid=""
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now_ns() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
ctl() { timeout 600 "$CTL" --url "$URL" "$@"; }
csv() { echo "$1,$2,$3,$4" >> "$results/scale.csv"; }   # size,switch,metric,value
jget() { jq -r "$2 // \"\"" "$1"; }

# ---- vswitchd ------------------------------------------------------------------------------
cat > "$work/vs.toml" <<TOML
[api]
listen = "127.0.0.1:$port"
max_body_bytes = 536870912
[datapath]
pmd_cores = []
max_flows = 2000000
run_dir = "$work/run"
TOML
start_vswitchd() { # exec time in ns on stdout of the caller via variable t_exec
    t_exec=$(now_ns)
    "$VSWITCHD" --config "$work/vs.toml" --state-dir "$work/state" >> "$work/vswitchd.log" 2>&1 &
    vs_pid=$!
}
wait_api() {
    for _ in $(seq 600); do
        "$CTL" --url "$URL" list-br >/dev/null 2>&1 && return 0
        kill -0 "$vs_pid" 2>/dev/null || { tail -20 "$work/vswitchd.log" >&2; return 1; }
        sleep 0.1
    done
    echo "vswitchd's API did not come up in 60 s" >&2; return 1
}
vs_rules() { ctl metrics | awk '/^vswitch_rules\{.*bridge="br0"/ {s += $NF} END {print s + 0}'; }

# ---- private Open vSwitch ------------------------------------------------------------------
ovsenv() { env OVS_RUNDIR="$ovsdir" OVS_DBDIR="$ovsdir" OVS_LOGDIR="$ovsdir" OVS_SYSCONFDIR="$ovsdir" "$@"; }
vsctl() { ovsenv timeout 60 ovs-vsctl --db="unix:$ovsdir/db.sock" --timeout=30 "$@"; }
ofctl() { ovsenv timeout 1800 ovs-ofctl "$@"; }
daemon_args() { echo "--pidfile=$ovsdir/$1.pid --unixctl=$ovsdir/$1.ctl --log-file=$ovsdir/$1.log --no-chdir -vconsole:off"; }
start_ovs() {
    rm -rf "$ovsdir"; mkdir -p "$ovsdir"
    ovsenv ovsdb-tool create "$ovsdir/conf.db" "$SCHEMA"
    # shellcheck disable=SC2046
    # env execs the daemon: $! is the daemon's pid (a shell function in the background would be
    # a subshell, and its pid not the daemon's).
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
    [[ $(cat "/proc/$ovs_pid/comm" 2>/dev/null) == ovs-vswitchd ]] || { echo "pid $ovs_pid is not ovs-vswitchd" >&2; return 1; }
    vsctl add-br br0 -- set bridge br0 datapath_type=dummy fail_mode=secure \
        -- add-port br0 p1 -- set interface p1 type=dummy ofport_request=1 \
        -- add-port br0 p2 -- set interface p2 type=dummy ofport_request=2
    for _ in $(seq 300); do [[ -S $ovsdir/br0.mgmt ]] && break; sleep 0.1; done
    ofctl del-flows "unix:$ovsdir/br0.mgmt"
}
stop_ovs() { stop_pid "$ovs_pid"; ovs_pid=""; stop_pid "$ovsdb_pid"; ovsdb_pid=""; }
ovs_rules() { ofctl dump-aggregate "unix:$ovsdir/br0.mgmt" | sed -n 's/.*flow_count=\([0-9]*\).*/\1/p'; }

# ---- one series of measurements ------------------------------------------------------------
record_latency() { # SIZE SWITCH PREFIX JSON
    local f=$4
    csv "$1" "$2" "$3_n" "$(jget "$f" .add.n)"
    csv "$1" "$2" "$3_bounded" "$(jget "$f" .bounded)"
    csv "$1" "$2" "$3_errors" "$(jget "$f" .errors)"
    for op in add del; do
        for q in p50_ms p99_ms; do csv "$1" "$2" "$3_${op}_$q" "$(jget "$f" ".$op.$q")"; done
    done
    if [[ $(jget "$f" .errors) != 0 ]]; then echo "  $3: $(jget "$f" .errors) errors, first: $(jget "$f" .first_error)" >&2; fi
}
record_tput() { # SIZE SWITCH PREFIX JSON
    local f=$4
    csv "$1" "$2" "$3_per_s" "$(jget "$f" .changes_per_s)"
    csv "$1" "$2" "$3_total" "$(jget "$f" .changes_total)"
    csv "$1" "$2" "$3_total_s" "$(jget "$f" .total_s)"
    csv "$1" "$2" "$3_errors" "$(jget "$f" .errors)"
    for op in add del; do csv "$1" "$2" "$3_${op}_p50_ms" "$(jget "$f" ".$op.p50_ms")"; done
    if [[ $(jget "$f" .errors) != 0 ]]; then echo "  $3: $(jget "$f" .errors) errors, first: $(jget "$f" .first_error)" >&2; fi
}
restart_once() { # SIZE SIGNAL DST ROUND
    local n=$1 sig=$2 dst=$3 round=$4 t_kill t_stopped
    t_kill=$(now_ns)
    stop_pid "$vs_pid" "$sig"; vs_pid=""
    t_stopped=$(now_ns)
    start_vswitchd
    local f=$results/raw/$n-vswitch-restart-$sig-$round.json
    timeout 900 "$FC" restart-probe --url "$URL" --bridge br0 --in-port p1 --out-port p2 \
        --dst "$dst" --timeout-secs 600 > "$f" || true
    local api fwd
    api=$(jget "$f" .api_up_unix_ns) fwd=$(jget "$f" .forwarded_unix_ns)
    [[ $sig == TERM ]] && csv "$n" vswitch restart_TERM_stop_s "$(secs "$t_kill" "$t_stopped")"
    csv "$n" vswitch "restart_${sig}_api_s" "$([[ -n $api ]] && secs "$t_exec" "$api")"
    csv "$n" vswitch "restart_${sig}_forward_s" "$([[ -n $fwd ]] && secs "$t_exec" "$fwd")"
    [[ -n $fwd ]] || echo "  restart ($sig): no forwarding: $(jget "$f" .error)" >&2
    # The rules survived: the count after the restart.
    csv "$n" vswitch "restart_${sig}_rules" "$(vs_rules)"
}

measure_vswitch() { # SIZE RULES_FILE INSTALLED
    local n=$1 rules=$2 installed=$3 t0 t1
    rm -rf "$work/state" "$work/run"
    start_vswitchd; wait_api
    ctl add-br br0 datapath_type=dummy
    ctl add-port br0 p1 type=dummy ofport_request=1
    ctl add-port br0 p2 type=dummy ofport_request=2
    ctl del-flows br0   # no NORMAL rule: only the installed rules forward
    sleep 1
    local idle; idle=$(rss_kb "$vs_pid")
    t0=$(now_ns); ctl add-flows br0 "$rules"; t1=$(now_ns)
    csv "$n" vswitch bulk_s "$(secs "$t0" "$t1")"
    csv "$n" vswitch rules "$(vs_rules)"
    sleep 1
    local with; with=$(rss_kb "$vs_pid")
    csv "$n" vswitch rss_idle_kb "$idle"
    csv "$n" vswitch rss_rules_kb "$with"
    echo "  vswitch: bulk $(secs "$t0" "$t1") s, RSS ${idle} -> ${with} kB"
    local f=$results/raw/$n-vswitch
    timeout $((MAX_SECS + 600)) "$FC" rest-latency --url "$URL" --bridge br0 --samples "$SAMPLES" \
        --max-secs "$MAX_SECS" --base 11 > "$f-rest-latency.json"
    record_latency "$n" vswitch rest "$f-rest-latency.json"
    timeout $((MAX_SECS + 600)) "$FC" exec-latency --samples "$CLI_SAMPLES" --max-secs "$MAX_SECS" --base 13 \
        --add "$CTL --url $URL add-flow br0 {flow}" \
        --del "$CTL --url $URL del-flows --strict br0 {match}" > "$f-cli-latency.json"
    record_latency "$n" vswitch cli "$f-cli-latency.json"
    timeout $((SECS + 600)) "$FC" rest-throughput --url "$URL" --bridge br0 --clients 4 --secs "$SECS" \
        --base 20 > "$f-rest-tput.json"
    record_tput "$n" vswitch rest_tput "$f-rest-tput.json"
    timeout $((SECS + 600)) "$FC" exec-throughput --clients 4 --secs "$SECS" --base 30 \
        --add "$CTL --url $URL add-flow br0 {flow}" \
        --del "$CTL --url $URL del-flows --strict br0 {match}" > "$f-cli-tput.json"
    record_tput "$n" vswitch cli_tput "$f-cli-tput.json"
    echo "  vswitch: REST add p50 $(jget "$f-rest-latency.json" .add.p50_ms) ms, del p50 $(jget "$f-rest-latency.json" .del.p50_ms) ms;" \
        "CLI add p50 $(jget "$f-cli-latency.json" .add.p50_ms) ms; REST 4 clients $(jget "$f-rest-tput.json" .changes_per_s)/s;" \
        "CLI 4 loops $(jget "$f-cli-tput.json" .changes_per_s)/s"
    local dst
    dst=$(awk -v i=$((installed - 1)) 'BEGIN { printf "10.%d.%d.%d", int(i / 65536) % 256, int(i / 256) % 256, i % 256 }')
    for (( r = 1; r <= RESTARTS; r++ )); do
        restart_once "$n" TERM "$dst" "$r"
        if (( RESTART_KILL )); then restart_once "$n" KILL "$dst" "$r"; fi
    done
    echo "  vswitch: restart to forwarding (s), SIGTERM:" \
        "$(awk -F, -v n="$n" '$1==n && $3=="restart_TERM_forward_s" {printf " %s", $4}' "$results/scale.csv");" \
        "kill -9: $(awk -F, -v n="$n" '$1==n && $3=="restart_KILL_forward_s" {printf " %s", $4}' "$results/scale.csv")"
    stop_pid "$vs_pid"; vs_pid=""
}

measure_ovs() { # SIZE RULES_FILE
    local n=$1 rules=$2 t0 t1 mgmt=unix:$ovsdir/br0.mgmt
    start_ovs
    sleep 1
    local idle; idle=$(rss_kb "$ovs_pid")
    # (ovs-ofctl logs long poll intervals on stderr during big installs: kept in a file.)
    t0=$(now_ns)
    ofctl add-flows "$mgmt" "$rules" 2> "$work/ofctl-bulk.err" || { cat "$work/ofctl-bulk.err" >&2; return 1; }
    t1=$(now_ns)
    csv "$n" ovs bulk_s "$(secs "$t0" "$t1")"
    csv "$n" ovs rules "$(ovs_rules)"
    sleep 1
    local with; with=$(rss_kb "$ovs_pid")
    csv "$n" ovs rss_idle_kb "$idle"
    csv "$n" ovs rss_rules_kb "$with"
    echo "  ovs: bulk $(secs "$t0" "$t1") s, RSS ${idle} -> ${with} kB"
    local f=$results/raw/$n-ovs
    ovsenv timeout $((MAX_SECS + 600)) "$FC" exec-latency --samples "$CLI_SAMPLES" --max-secs "$MAX_SECS" --base 13 \
        --add "ovs-ofctl add-flow $mgmt {flow}" \
        --del "ovs-ofctl del-flows --strict $mgmt {match}" > "$f-cli-latency.json"
    record_latency "$n" ovs cli "$f-cli-latency.json"
    ovsenv timeout $((SECS + 600)) "$FC" exec-throughput --clients 4 --secs "$SECS" --base 30 \
        --add "ovs-ofctl add-flow $mgmt {flow}" \
        --del "ovs-ofctl del-flows --strict $mgmt {match}" > "$f-cli-tput.json"
    record_tput "$n" ovs cli_tput "$f-cli-tput.json"
    echo "  ovs: ovs-ofctl add p50 $(jget "$f-cli-latency.json" .add.p50_ms) ms, del p50 $(jget "$f-cli-latency.json" .del.p50_ms) ms;" \
        "4 loops $(jget "$f-cli-tput.json" .changes_per_s)/s"
    stop_ovs
}

echo "size,switch,metric,value" > "$results/scale.csv"
{
    echo "date=$(date -u +%FT%TZ) host=$(hostname) nproc=$(nproc)"
    echo "commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo -dirty)"
    echo "ovs=$(ovs-vswitchd --version | head -1)"
    echo "sizes=$SIZES ovs_max=$OVS_MAX samples=$SAMPLES cli_samples=$CLI_SAMPLES secs=$SECS max_secs=$MAX_SECS restarts=$RESTARTS"
} > "$results/env.txt"
cat "$results/env.txt"
IFS=, read -r -a sizes <<< "$SIZES"
for n in "${sizes[@]}"; do
    echo "== $n rules"
    rules=$work/rules-$n.txt
    installed=$(( n > RULE_CAP - HEADROOM ? RULE_CAP - HEADROOM : n ))
    (( installed == n )) || echo "  installing $installed rules ($HEADROOM below vswitchd's cap of $RULE_CAP, for the single changes)"
    awk -v n="$installed" 'BEGIN { for (i = 0; i < n; i++) printf "priority=100,ip,nw_dst=10.%d.%d.%d,actions=output:2\n", int(i / 65536) % 256, int(i / 256) % 256, i % 256 }' > "$rules"
    measure_vswitch "$n" "$rules" "$installed"
    if (( n <= OVS_MAX )); then
        measure_ovs "$n" "$rules"
    else
        csv "$n" ovs skipped "--ovs-max $OVS_MAX"
        echo "  ovs: skipped (--ovs-max $OVS_MAX)"
    fi
    rm -f "$rules"
done

python3 "$ROOT/benches/e2e/control_scale_table.py" "$results/scale.csv" "$results/env.txt" > "$results/scale.md"
cat "$results/scale.md"
echo "results: $results"
