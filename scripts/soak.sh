#!/usr/bin/env bash
# Soak: MINUTES (default 10; SOAK_SECONDS overrides) of traffic through vswitchd on the kernel
# path (two namespaces: iperf3 TCP at a capped rate, and a ping stream) and the vhost path
# (dpdk-testpmd as a VM with two virtio-user ports, sending in bursts), while
#   - a churn loop adds and deletes thousands of rules per second over REST,
#   - tap ports come and go every second, and the VM's second port is deleted and re-added,
#   - every 2 s a "divert" rule sends the ping stream to a sink namespace, is deleted, and the
#     sink's receive counter must not move after the DELETE returned.
# Every 5 s: vswitchd's RSS, whether both paths still forward, and whether each PMD's cycle
# counters advance (a stuck PMD stops counting). Prints a summary and exits non-zero when any
# check failed. Needs root, iproute2, iperf3, ping, curl, jq; dpdk-testpmd for the vhost
# path (skipped loudly without it). Usage: scripts/soak.sh [MINUTES]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DUR=${SOAK_SECONDS:-$(( ${1:-10} * 60 ))}
BIN=${VSWITCH_BIN:-}
if [ -z "$BIN" ]; then
    if [ -x "$ROOT/target/release/vswitchd" ]; then BIN=$ROOT/target/release; else BIN=$ROOT/target/debug; fi
fi
[ -x "$BIN/vswitchd" ] || { echo "soak: no vswitchd in $BIN (cargo build --release)"; exit 2; }
for t in ip iperf3 ping curl jq; do command -v $t >/dev/null || { echo "soak: needs $t"; exit 2; }; done
[ "$(id -u)" = 0 ] || { echo "soak: needs root"; exit 2; }

TAG=sk$(( $$ % 100000 ))
WORK=$(mktemp -d /tmp/vswitch-soak.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
BR=${TAG}br
NA=${TAG}a NB=${TAG}b NS=${TAG}s
PIDS=()
FAIL=0
fail() { echo "FAIL: $*"; FAIL=1; }
cleanup() {
    set +e
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    sleep 0.5
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
    [ -n "${VSPID:-}" ] && kill "$VSPID" 2>/dev/null && wait "$VSPID" 2>/dev/null
    for n in $NA $NB $NS; do ip netns del "$n" 2>/dev/null; done
    for i in $(seq 0 9); do ip link del "${TAG}t$i" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT
ctl() { "$BIN/vswitchctl" --url "$URL" "$@"; }
api() { curl -sS -m 10 -H 'Content-Type: application/json' "$@"; }

printf '[api]\nlisten = "127.0.0.1:%s"\n' "$PORT" > "$WORK/vswitchd.toml"
"$BIN/vswitchd" --config "$WORK/vswitchd.toml" --state-dir "$WORK/state" --run-dir "$WORK/run" \
    2>"$WORK/vswitchd.log" &
VSPID=$!
for _ in $(seq 100); do ctl list-br >/dev/null 2>&1 && break; sleep 0.1; done
ctl add-br "$BR"
for n in $NA $NB $NS; do ip netns add "$n"; ip netns exec "$n" sysctl -qw net.ipv6.conf.all.disable_ipv6=1; done
ctl attach-netns "$BR" $NA --ip 10.66.0.1/24 --port ${TAG}pa >/dev/null
ctl attach-netns "$BR" $NB --ip 10.66.0.2/24 --port ${TAG}pb >/dev/null
# The sink is alone on VLAN 99: nothing reaches it but what the divert rule sends.
ctl attach-netns "$BR" $NS --ip 10.66.99.9/24 --vlan 99 --port ${TAG}ps >/dev/null
sink_rx() { ip netns exec $NS cat /sys/class/net/eth0/statistics/rx_packets; }
rss_kb() { awk '/^VmRSS/ {print $2}' /proc/$VSPID/status; }

# Kernel path traffic (runs past the measured window, which starts once the VM is up; killed
# at the end).
ip netns exec $NB iperf3 -s -1 >/dev/null 2>&1 & PIDS+=($!)
sleep 0.5
ip netns exec $NA iperf3 -c 10.66.0.2 -t "$((DUR + 120))" -b 100M -i 10 >"$WORK/iperf.log" 2>&1 & PIDS+=($!)
ip netns exec $NA ping -q -i 0.01 -w "$((DUR + 120))" 10.66.0.2 >"$WORK/ping.log" 2>&1 & PIDS+=($!)
PING_PID=$!

# Vhost path traffic: testpmd listens, the switch connects (vhostuserclient).
VHOST=0
if command -v dpdk-testpmd >/dev/null; then
    VHOST=1
    mkfifo "$WORK/tp.in"
    SA=$WORK/vma.sock SB=$WORK/vmb.sock
    dpdk-testpmd --lcores=0@0,1@0 --no-pci --in-memory --single-file-segments --no-telemetry \
        --file-prefix=$TAG -m 128 \
        --vdev=net_virtio_user0,path=$SA,server=1,queues=1,mac=02:00:00:00:aa:01 \
        --vdev=net_virtio_user1,path=$SB,server=1,queues=1,mac=02:00:00:00:aa:02 \
        -- -i --nb-cores=1 --forward-mode=txonly --eth-peer=0,02:00:00:00:aa:02 \
        --eth-peer=1,02:00:00:00:aa:01 --total-num-mbufs=8192 \
        <"$WORK/tp.in" >"$WORK/testpmd.log" 2>&1 & PIDS+=($!)
    exec 7>"$WORK/tp.in"
    for _ in $(seq 100); do [ -S "$SA" ] && [ -S "$SB" ] && break; sleep 0.1; done
    ctl add-port "$BR" vma type=vhostuserclient "vhost-server-path=$SA" >/dev/null
    ctl add-port "$BR" vmb type=vhostuserclient "vhost-server-path=$SB" >/dev/null
    # Bursts: 0.3 s of sending per second.
    ( end=$((SECONDS + DUR)); while [ $SECONDS -lt $end ]; do
        echo start >&7; sleep 0.3; echo stop >&7; sleep 0.7; done ) & PIDS+=($!)
else
    echo "SKIPPED: vhost path (no dpdk-testpmd)"
fi
vhost_rx() { api "$URL/bridges/$BR/ports/vma" | jq '.statistics.rx_packets // 0'; }

# Rule churn: batches of 1000 rules added then deleted by cookie, as fast as the API allows.
( i=0; end=$((SECONDS + DUR)); while [ $SECONDS -lt $end ]; do
    body=$(jq -cn --argjson b $((i % 50)) '{flows: [range(1000) | "cookie=0x77,priority=5,udp,nw_src=10.\($b).\(. / 256 | floor).\(. % 256),tp_dst=7,actions=drop"]}')
    api -X POST -d "$body" "$URL/bridges/$BR/flows" >/dev/null || echo "add failed" >&2
    api -X DELETE -d '{"flow":"cookie=0x77/-1"}' "$URL/bridges/$BR/flows" >/dev/null || echo "del failed" >&2
    i=$((i + 1)); echo $((i * 2000)) >"$WORK/churned"
done ) 2>>"$WORK/churn.err" & PIDS+=($!)

# Port churn: a tap port added and deleted every second; the VM's second port every 10 s.
( j=0; end=$((SECONDS + DUR)); while [ $SECONDS -lt $end ]; do
    t=${TAG}t$((j % 10))
    ctl add-port "$BR" "$t" type=tap >/dev/null && sleep 0.5 && ctl del-port "$BR" "$t"
    if [ $VHOST = 1 ] && [ $((j % 10)) = 9 ]; then
        ctl del-port "$BR" vmb && ctl add-port "$BR" vmb type=vhostuserclient "vhost-server-path=$SB" >/dev/null
    fi
    j=$((j + 1)); echo $j >"$WORK/portchurn"; sleep 0.5
done ) 2>>"$WORK/portchurn.err" & PIDS+=($!)

START=$SECONDS
RSS0=$(rss_kb); RSS_WARM="" ; RSS_MAX=$RSS0
DIVERTS=0 DIVERTED=0 LATE=0
last_cycles=""; last_vrx=0; last_ping=""
printf '%6s %9s %10s %8s %8s %s\n' t_s rss_kb rules_churn ports vhost_rx pmd_cycles
next_sample=$SECONDS
while [ $((SECONDS - START)) -lt "$DUR" ]; do
    kill -0 $VSPID 2>/dev/null || { fail "vswitchd died"; break; }
    # Divert the ping stream to the sink, check it arrives, delete, check nothing more does.
    before=$(sink_rx)
    ctl add-flow "$BR" "priority=3000,icmp,nw_dst=10.66.0.2,actions=output:${TAG}ps"
    sleep 0.5
    during=$(sink_rx)
    ctl del-flows --strict "$BR" "priority=3000,icmp,nw_dst=10.66.0.2"
    after_del=$(sink_rx)
    sleep 1
    later=$(sink_rx)
    DIVERTS=$((DIVERTS + 1)); DIVERTED=$((DIVERTED + during - before))
    [ "$during" -gt "$before" ] || fail "divert rule sent nothing to the sink at $((SECONDS - START)) s (ping alive: $(kill -0 $PING_PID 2>/dev/null && echo yes || echo no))"
    if [ "$later" != "$after_del" ]; then
        LATE=$((LATE + later - after_del)); fail "$((later - after_del)) packets reached the sink after the rule's deletion returned"
    fi
    if [ $SECONDS -ge $next_sample ]; then
        next_sample=$((SECONDS + 5))
        rss=$(rss_kb); [ "$rss" -gt "$RSS_MAX" ] && RSS_MAX=$rss
        t=$((SECONDS - START))
        [ -z "$RSS_WARM" ] && [ $t -ge $((DUR / 5)) ] && RSS_WARM=$rss
        cycles=$(ctl pmd-stats-show | awk '/idle cycles|processing cycles/ {s += $3} /^pmd/ {if (n++) printf " "; } END {print s}')
        [ -n "$last_cycles" ] && [ "$cycles" = "$last_cycles" ] && fail "PMD cycle counters did not advance (stuck PMD)"
        last_cycles=$cycles
        vrx=0
        if [ $VHOST = 1 ]; then
            vrx=$(vhost_rx)
            [ "$vrx" -gt "$last_vrx" ] || fail "vhost path did not forward in the last interval"
            last_vrx=$vrx
        fi
        ip netns exec $NA ping -c 1 -W 1 10.66.0.2 >/dev/null || fail "kernel path ping failed"
        printf '%6d %9d %10s %8s %8s %s\n' $t "$rss" "$(cat "$WORK/churned" 2>/dev/null || echo 0)" \
            "$(cat "$WORK/portchurn" 2>/dev/null || echo 0)" "$vrx" "$cycles"
    fi
done
ELAPSED=$((SECONDS - START))
RSS_END=$(rss_kb 2>/dev/null || echo 0)
kill -0 $VSPID 2>/dev/null || fail "vswitchd died"
CHURNED=$(cat "$WORK/churned" 2>/dev/null || echo 0)
echo
echo "soak summary ($ELAPSED s, binaries $BIN)"
echo "  RSS kB: start $RSS0, after warm-up (${DUR}/5 s) ${RSS_WARM:-n/a}, end $RSS_END, max $RSS_MAX"
echo "  rules added+deleted: $CHURNED ($((CHURNED / (ELAPSED > 0 ? ELAPSED : 1))) per s); churn errors: $(wc -l <"$WORK/churn.err")"
echo "  port add/del cycles: $(cat "$WORK/portchurn" 2>/dev/null || echo 0); errors: $(wc -l <"$WORK/portchurn.err")"
echo "  divert checks: $DIVERTS, packets diverted while present: $DIVERTED, after deletion: $LATE"
echo "  kernel path: $(api "$URL/bridges/$BR/ports/${TAG}pb" | jq '.statistics.tx_bytes / 1e6 | floor') MB to $NB (iperf3 at 100 Mbit/s, pings); ping now: $(ip netns exec $NA ping -c 3 -i 0.2 -q 10.66.0.2 | grep -o '[0-9]*% packet loss')"
echo "  vhost path: $( [ $VHOST = 1 ] && echo "vma rx $(vhost_rx) packets" || echo skipped)"
if [ -n "$RSS_WARM" ] && [ "$RSS_END" -gt $((RSS_WARM + RSS_WARM / 5 + 4096)) ]; then
    fail "RSS grew after warm-up: $RSS_WARM -> $RSS_END kB"
fi
[ "$(wc -l <"$WORK/churn.err")" = 0 ] || fail "rule churn requests failed: $(head -3 "$WORK/churn.err")"
grep -iE "panic|error" "$WORK/vswitchd.log" | grep -v "not restored" | head -5 || true
[ $FAIL = 0 ] && echo "soak: PASS" || { echo "soak: FAIL"; exit 1; }
