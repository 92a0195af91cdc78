# shellcheck shell=bash
# Switch adapter for ../shared/bench (vhost_bench.sh): vswitchd with one PMD thread pinned to
# CPU 1 and two vhost-user ports, driven with vswitchctl. `benches/e2e/run-vhost.sh` copies the
# harness to a scratch directory, drops this file in as switches/vswitch.sh and runs it.
#
# Knobs (env): VSW_ROOT (the project; binaries from target/release), VSW_VHOST_MODE=client|server
# (default client: vswitch connects to the generator's sockets, like OVS dpdkvhostuserclient),
# VSW_PMD_CORE (default 1), VSW_EMC_INV_PROB (default 100, as OVS).

SW_NAME=vswitch
VSW_RUN=$ANCHOR_TMP/vswitch
VSW_BIN=${VSW_BIN:-$VSW_ROOT/target/release/vswitchd}
VSW_CTL_BIN=${VSW_CTL_BIN:-$VSW_ROOT/target/release/vswitchctl}
VSW_VHOST_MODE=${VSW_VHOST_MODE:-client}
VSW_PMD_CORE=${VSW_PMD_CORE:-1}
VSW_BR=br-vsw
SW_LOGS="$VSW_RUN/vswitchd.log"

vswctl() { "$VSW_CTL_BIN" --url "http://127.0.0.1:$VSW_API_PORT" "$@"; }

sw_start() {
    stop_pidfile "$VSW_RUN/vswitchd.pid" vswitchd
    ip link del $VSW_BR 2>/dev/null
    rm -rf "$VSW_RUN"; mkdir -p "$VSW_RUN"
    VSW_API_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat > "$VSW_RUN/vswitchd.toml" <<TOML
[api]
listen = "127.0.0.1:$VSW_API_PORT"
[datapath]
pmd_cores = [$VSW_PMD_CORE]
emc_insert_inv_prob = ${VSW_EMC_INV_PROB:-100}
run_dir = "$VSW_RUN/run"
TOML
    "$VSW_BIN" --config "$VSW_RUN/vswitchd.toml" --state-dir "$VSW_RUN/state" \
        > "$VSW_RUN/vswitchd.log" 2>&1 &
    echo $! > "$VSW_RUN/vswitchd.pid"
    track_pid $!
    SW_PIDS=$!
    export VSW_API_PORT
    wait_until 30 vswctl list-br >/dev/null || die "vswitchd did not start (see $VSW_RUN/vswitchd.log)"
    vswctl add-br $VSW_BR
    track_link $VSW_BR
    if [[ $VSW_VHOST_MODE == client ]]; then
        SOCK_A=$VSW_RUN/vhA.sock SOCK_B=$VSW_RUN/vhB.sock FRONTEND=server
        vswctl add-port $VSW_BR vhA type=vhostuserclient vhost-server-path="$SOCK_A" ofport_request=1
        vswctl add-port $VSW_BR vhB type=vhostuserclient vhost-server-path="$SOCK_B" ofport_request=2
    else
        SOCK_A=$VSW_RUN/run/vhA SOCK_B=$VSW_RUN/run/vhB FRONTEND=client
        vswctl add-port $VSW_BR vhA type=vhostuser ofport_request=1
        vswctl add-port $VSW_BR vhB type=vhostuser ofport_request=2
        wait_until 10 test -S "$SOCK_A" -a -S "$SOCK_B" || die "vswitchd did not create its sockets"
    fi
    export SOCK_A SOCK_B FRONTEND SW_PIDS
    log "vswitch up: $("$VSW_BIN" --version) API port $VSW_API_PORT"
}

sw_scenarios() { echo "normal port l3"; }

sw_config() {
    vswctl del-flows $VSW_BR
    vswctl fdb-del $VSW_BR 0 02:00:00:00:00:0b >/dev/null 2>&1 || true
    case $1 in
        normal)  # L2 learning; dst MAC of B pinned so nothing is flooded
            vswctl add-flow $VSW_BR "priority=0,actions=NORMAL"
            vswctl fdb-add $VSW_BR vhB 0 02:00:00:00:00:0b ;;
        port)
            vswctl add-flow $VSW_BR "priority=10,in_port=1,actions=output:2" ;;
        l3)
            vswctl add-flow $VSW_BR "priority=10,udp,in_port=1,nw_dst=10.255.0.1,tp_dst=5001,actions=output:2" ;;
        *) return 2 ;;
    esac
    vswctl dump-flows $VSW_BR >&2
}

SW_BEFORE_REP="$VSW_CTL_BIN --url http://127.0.0.1:\$VSW_API_PORT pmd-stats-clear"
SW_AFTER_REP="$VSW_CTL_BIN --url http://127.0.0.1:\$VSW_API_PORT pmd-stats-show > \$GEN_OUT/pmd-stats-rep\$REP.txt; \
$VSW_CTL_BIN --url http://127.0.0.1:\$VSW_API_PORT dump-ports $VSW_BR vhB > \$GEN_OUT/vhB-stats-rep\$REP.txt"

sw_extra_summary() {
    local f
    f=$(ls "$1"/pmd-stats-rep*.txt 2>/dev/null | sort -V | tail -1)
    [[ -f $f ]] || return 0
    awk '/packets received:/ {rx=$3}
        /emc hits:/ {emc=$3}
        /megaflow hits:/ {mf=$3}
        /miss with success upcall:/ {up=$5}
        /processing cycles:/ && !/avg/ {gsub(/[()%]/,"",$4); busy=$4}
        /avg processing cycles per packet:/ {cpp=$6}
        END { if (rx == 0) rx = 1;
          printf "emc%%=%.1f megaflow%%=%.1f upcalls=%d pmd_busy%%=%s cyc/pkt=%s\n",
            100*emc/rx, 100*mf/rx, up, busy, cpp }' "$f"
}

sw_stop() {
    [[ -f $VSW_RUN/vswitchd.pid ]] || return 0
    vswctl del-br $VSW_BR >/dev/null 2>&1 || true
    stop_pid "$(cat "$VSW_RUN/vswitchd.pid" 2>/dev/null)" 10
    rm -f "$VSW_RUN/vswitchd.pid"
}
