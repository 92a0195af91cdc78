# shellcheck shell=bash
# Switch adapter for ../shared/bench (vhost_bench.sh): DPDK's testpmd as a vhost-user "patch
# panel" (io forwarding A -> B on CPU 1, no parsing, no lookup), the floor of what a switch that
# copies each frame out of one guest and into the other costs on this machine. It replaces the
# harness's own testpmd adapter in run-vhost.sh's scratch copy, with one addition: testpmd runs
# with --record-core-cycles and is asked for its statistics after every window, so that each
# window has the busy cycles per packet the switches' own counters give (testpmd counts the
# cycles of the polls that returned packets, as OVS and vswitch count busy iterations).
#
# Knobs (env): TPSW_VHOST_MODE=client|server (default client, as the other adapters), TPSW_CPU
# (default 1).

SW_NAME=testpmd
TPSW_RUN=$ANCHOR_TMP/testpmd-vhost
TPSW_VHOST_MODE=${TPSW_VHOST_MODE:-client}
TPSW_CPU=${TPSW_CPU:-1}
TPSW_PID=""
TPSW_IN=$TPSW_RUN/cmd.fifo
SW_LOGS="$TPSW_RUN/testpmd.log"

sw_start() {
    stop_pidfile "$TPSW_RUN/testpmd.pid" dpdk-testpmd
    rm -rf "$TPSW_RUN"; mkdir -p "$TPSW_RUN"
    ensure_hugepages 140
    local c
    if [[ $TPSW_VHOST_MODE == client ]]; then
        c=1 SOCK_A=$TPSW_RUN/vhA.sock SOCK_B=$TPSW_RUN/vhB.sock FRONTEND=server
    else
        c=0 SOCK_A=$TPSW_RUN/vhA.sock SOCK_B=$TPSW_RUN/vhB.sock FRONTEND=client
    fi
    export SOCK_A SOCK_B FRONTEND
    mkfifo "$TPSW_IN"
    # Interactive, commands from the fifo (kept open by this shell: EOF would quit testpmd).
    stdbuf -oL -eL dpdk-testpmd --lcores="0@0,1@$TPSW_CPU" --no-pci --in-memory \
        --file-prefix=anchortpsw -m 256 \
        --vdev="net_vhost0,iface=$SOCK_A,client=$c,queues=1" \
        --vdev="net_vhost1,iface=$SOCK_B,client=$c,queues=1" \
        -- -i --forward-mode=io --port-topology=paired --nb-cores=1 --record-core-cycles \
           --total-num-mbufs=16384 --rxd=1024 --txd=1024 \
        < "$TPSW_IN" > "$TPSW_RUN/testpmd.log" 2>&1 &
    TPSW_PID=$!
    exec {TPSW_FD}>"$TPSW_IN"
    SW_PIDS=$TPSW_PID; export SW_PIDS
    echo $TPSW_PID > "$TPSW_RUN/testpmd.pid"
    track_pid $TPSW_PID
    wait_until 30 grep -q "testpmd> " "$TPSW_RUN/testpmd.log" || die "testpmd switch did not start"
    echo start >&"$TPSW_FD"
    if [[ $FRONTEND == client ]]; then
        wait_until 10 test -S "$SOCK_A" -a -S "$SOCK_B" || die "vhost sockets missing"
    fi
    log "testpmd patch-panel switch pid $TPSW_PID on cpu $TPSW_CPU (cycles recorded)"
}

sw_scenarios() { echo "port"; }
sw_config() { [[ $1 == port ]] || return 2; }

# After a window: testpmd's statistics since the last clear, rewritten as the two lines of
# vswitch's pmd-stats-show that compare.py reads.
SW_BEFORE_REP="echo 'clear fwd stats all' > $TPSW_IN"
SW_AFTER_REP="n=\$(grep -c 'CPU cycles/packet=' $TPSW_RUN/testpmd.log); echo 'show fwd stats all' > $TPSW_IN; \
for i in \$(seq 50); do (( \$(grep -c 'CPU cycles/packet=' $TPSW_RUN/testpmd.log) > n )) && break; sleep 0.02; done; \
grep 'CPU cycles/packet=' $TPSW_RUN/testpmd.log | tail -1 | \
sed -E 's|.*cycles/packet=([0-9.]+) \\(total cycles=([0-9]+) / total io packets=([0-9]+)\\).*|packets received: \\3\\navg processing cycles per packet: \\1 (\\2/\\3)|' \
> \$GEN_OUT/pmd-stats-rep\$REP.txt"

sw_extra_summary() {
    local f
    f=$(ls "$1"/pmd-stats-rep*.txt 2>/dev/null | sort -V | tail -1)
    [[ -f $f ]] || return 0
    awk '/avg processing cycles per packet:/ {print "cyc/pkt=" $6}' "$f"
}

sw_stop() {
    [[ -n ${TPSW_FD:-} ]] && { echo quit >&"$TPSW_FD" 2>/dev/null || true; exec {TPSW_FD}>&-; TPSW_FD=""; }
    stop_pid "$TPSW_PID" 5
    grep -A3 "Accumulated forward statistics" "$TPSW_RUN/testpmd.log" >&2 || true
    rm -f "$TPSW_RUN/testpmd.pid"
}
