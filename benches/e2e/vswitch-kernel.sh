# shellcheck shell=bash
# vswitch variants for ../shared/bench/kernel_bridge_bench.sh (sourced into a scratch copy by
# benches/e2e/run-kernel.sh, which also adds the `vswitch-*) vsw_kern_variant ...` case):
#   vswitch-afpacket  anc-v1/anc-v2 as type=system mode=afpacket (vnet headers: offloads kept)
#   vswitch-afxdp     anc-v1/anc-v2 as type=system mode=afxdp (no offloads: ns veths tx off,
#                     as the harness does for OVS afxdp)
#   vswitch-tap       no veths: the namespaces' interfaces are taps vswitch created (type=tap,
#                     offloads on), moved into the namespaces
# One PMD thread pinned to CPU 1, like the harness's OVS afxdp variant.

VSW_K_RUN=$ANCHOR_TMP/vswitch-kern

vsw_k_ctl() { "$VSW_ROOT/target/release/vswitchctl" --url "http://127.0.0.1:$VSW_K_PORT" "$@"; }

vsw_k_up() {
    rm -rf "$VSW_K_RUN"; mkdir -p "$VSW_K_RUN" "$OVS_RUN"
    VSW_K_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat > "$VSW_K_RUN/vswitchd.toml" <<TOML
[api]
listen = "127.0.0.1:$VSW_K_PORT"
[datapath]
pmd_cores = [1]
run_dir = "$VSW_K_RUN/run"
TOML
    "$VSW_ROOT/target/release/vswitchd" --config "$VSW_K_RUN/vswitchd.toml" \
        --state-dir "$VSW_K_RUN/state" > "$VSW_K_RUN/vswitchd.log" 2>&1 &
    local pid=$!
    track_pid $pid
    # The harness counts the processes whose pid files are in $OVS_RUN as its own (not foreign).
    echo $pid > "$OVS_RUN/vswitchd.pid"
    wait_until 30 vsw_k_ctl list-br >/dev/null || { log "vswitchd did not start"; return 1; }
    ip link del br-vsk 2>/dev/null
    vsw_k_ctl add-br br-vsk && track_link br-vsk
}

vsw_k_down() {
    local out=$1
    vsw_k_ctl pmd-stats-show > "$out/pmd-stats.txt" 2>&1
    vsw_k_ctl dump-ports br-vsk > "$out/ports.txt" 2>&1
    vsw_k_ctl del-br br-vsk >/dev/null 2>&1
    stop_pid "$(cat "$OVS_RUN/vswitchd.pid" 2>/dev/null)" 10
    rm -f "$OVS_RUN/vswitchd.pid"
    cp "$VSW_K_RUN/vswitchd.log" "$out/" 2>/dev/null
}

# vsw_kern_variant VARIANT OUTDIR
vsw_kern_variant() {
    local v=$1 out=$2 mode note
    case $v in
        vswitch-afpacket) mode=afpacket; topo_up switched on ;;
        vswitch-afxdp) mode=afxdp; topo_up switched off ;;
        vswitch-tap) mode=tap; topo_down
            ip netns add $NS1; ip netns add $NS2; track_netns $NS1; track_netns $NS2 ;;
        *) die "unknown variant $v" ;;
    esac
    if ! vsw_k_up; then
        echo "$v,tcp,Gbit/s,nan,nan,nan,0,vswitchd did not start" >> "$CSV"
        return 1
    fi
    if [[ $mode == tap ]]; then
        local i ns
        for i in 1 2; do
            ns=$NS1; [[ $i == 2 ]] && ns=$NS2
            vsw_k_ctl add-port br-vsk vsk-tap$i type=tap || return 1
            ip link set vsk-tap$i netns $ns
            ip -n $ns link set vsk-tap$i name anc-v${i}p
            ip -n $ns addr add 10.99.0.$i/24 dev anc-v${i}p
            ip -n $ns link set anc-v${i}p up; ip -n $ns link set lo up
        done
        note="vswitch; tap ports (vnet headers); 1 PMD"
    else
        vsw_k_ctl add-port br-vsk anc-v1 type=system mode=$mode || return 1
        vsw_k_ctl add-port br-vsk anc-v2 type=system mode=$mode || return 1
        note="vswitch; system mode=$mode; 1 PMD"
    fi
    vsw_k_ctl show >&2
    run_iperf "$v" "$out" "$note"
    vsw_k_down "$out"
}
