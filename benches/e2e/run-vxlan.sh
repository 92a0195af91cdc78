#!/usr/bin/env bash
# The VXLAN figure: iperf3 TCP Gbit/s from a namespace on a veth, through a switch, over VXLAN to
# a namespace holding a Linux `vxlan` device; the underlay is a veth pair between the switch side
# (the root namespace, 10.97.0.1) and that namespace (10.97.0.2). VNI 42, inner 10.98.0.0/24,
# inner MTU 1450 on both ends.
#
#   ns vx-ns1 [vx-v1p 10.98.0.1] -veth- vx-v1 == SWITCH + VTEP 10.97.0.1 -veth(underlay)-
#       vx-u0p 10.97.0.2 [vx0 vxlan 42, 10.98.0.2] ns vx-ns2
#
# Variants (--variant, repeatable):
#   linuxbr           Linux bridge with vx-v1 and a kernel vxlan device (offloads on)
#   linuxbr-txoff     the same with the far end's underlay veth as OVS needs it (transmit
#                     checksum offload off, see topo_up)
#   vswitch-afpacket  vswitchd (release), vx-v1 type=system mode=afpacket, a vxlan port
#                     (csum=true: UDP_SEGMENT), 1 PMD on CPU 1
#   vswitch-afpacket-nocsum  the same with csum=false (no UDP GSO: one datagram per segment)
#   vswitch-before    vswitch-afpacket with the binaries in $VSW_BASELINE (an older build, for
#                     before/after figures in one run; no csum option given)
#   vswitch-afxdp     vx-v1 type=system mode=afxdp (tx offloads off in ns1, as for OVS)
#   ovs-afxdp         OVS userspace datapath (netdev): br-vx with vx-v1 (type=afxdp) and a vxlan
#                     port, br-phy with vx-u0 (type=afxdp) holding 10.97.0.1 (OVS's userspace
#                     tunnels route and ARP through a bridge of their own); 1 PMD on CPU 1;
#                     tx offloads off on the namespace veths (its datapath cannot take partial
#                     checksums). A private OVS: db, sockets and logs in a temp dir.
# The variants are interleaved (ABC ABC ABC): each rep sets every variant up afresh and runs
# both directions: "into" (ns1 -> tunnel -> ns2) and "out" (iperf3 -R: ns2 -> tunnel -> ns1).
# Each test waits for a quiet machine and records other processes' CPU use meanwhile; medians
# use tests below FOREIGN_MAX (15) % of one CPU, all tests when none is.
# Needs root; installs its packages. Not a test: CI does not run it.
#
#   benches/e2e/run-vxlan.sh [--variant V]... [--reps 3] [--duration 10] [--dirs "into out"]
# Default variants: linuxbr linuxbr-txoff (vswitch-before with VSW_BASELINE) vswitch-afpacket
# vswitch-afxdp ovs-afxdp. VXLAN_NO_BUILD=1 skips the package check and the build; IPERF_EXTRA
# adds iperf3 client options (e.g. "-P 2").
# Results: benches/e2e/results/<date>-vxlan/vxlan.md (+ vxlan.csv, raw/)
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/benches/e2e/lib.sh"
VARIANTS=() REPS=3 DURATION=10 DIRS="into out"
while (( $# )); do
    case $1 in
        --variant) VARIANTS+=("$2"); shift ;;
        --reps) REPS=$2; shift ;;
        --duration) DURATION=$2; shift ;;
        --dirs) DIRS=$2; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "unknown arg $1" >&2; exit 2 ;;
    esac
    shift
done
if (( ${#VARIANTS[@]} == 0 )); then
    VARIANTS=(linuxbr linuxbr-txoff)
    [[ -n ${VSW_BASELINE:-} ]] && VARIANTS+=(vswitch-before)
    VARIANTS+=(vswitch-afpacket vswitch-afxdp ovs-afxdp)
fi
[[ $(id -u) == 0 ]] || { echo "run as root" >&2; exit 2; }
if [[ -z ${VXLAN_NO_BUILD:-} ]]; then
    e2e_prepare iperf3:iperf3 ethtool:ethtool \
        /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk:openvswitch-switch-dpdk,dpdk || exit 1
fi
BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release

export ANCHOR_TMP=$scratch/vxlan
ANCHOR_TAG=vxlan
# shellcheck source=/dev/null
source "$SHARED/lib/common.sh"
OVS_BIN=${OVS_BIN:-/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk}
OVS_PMD_MASK=${OVS_PMD_MASK:-0x2}
OVS_SOCKET_MEM=1024
# shellcheck source=/dev/null
source "$SHARED/switches/ovs.sh"   # ovs_start_daemons (started without DPDK here)
OVS_RUN=$ANCHOR_TMP/ovs
QUIET_MAX_WAIT=${QUIET_MAX_WAIT:-120}

RESULTS=${RESULTS_DIR:-$ROOT/benches/e2e/results/$(date +%Y%m%d-%H%M)-vxlan}
mkdir -p "$RESULTS/raw"
install_cleanup_trap
record_env "$RESULTS/env.txt"
git -C "$ROOT" log -1 --format='commit: %H %s' >> "$RESULTS/env.txt"
CSV=$RESULTS/vxlan.csv
echo "variant,dir,rep,gbps,retransmits,foreign_pct" > "$CSV"

NS1=vx-ns1 NS2=vx-ns2
# Not 4789: kernel vxlan devices bind their UDP port on any address of the namespace, so a test
# elsewhere holding 4789 in the root namespace would make the Linux bridge variant fail.
VX_PORT=${VX_PORT:-4799}
VSW_RUN=$ANCHOR_TMP/vswitch
VSW_PID="" IPERF_PID=""
VBIN=$BIN
vctl() { "$VBIN/vswitchctl" --url "http://127.0.0.1:$VSW_PORT" "$@"; }
kvsctl() { ovs-vsctl --db="unix:$OVS_RUN/db.sock" --timeout=30 "$@"; }
kappctl() { ovs-appctl -t "$OVS_RUN/ovs-vswitchd.ctl" --timeout=30 "$@"; }

topo_down() {
    [[ -n $IPERF_PID ]] && stop_pid "$IPERF_PID" 3
    IPERF_PID=""
    for l in vx-v1 vx-u0 vx-br vx-k0; do ip link del "$l" 2>/dev/null; done
    for n in $NS1 $NS2; do
        ip netns pids $n 2>/dev/null | while read -r p; do stop_pid "$p" 3; done
        ip netns del $n 2>/dev/null
    done
    return 0
}

# topo_up NS1_TXOFF UNDERLAY_TXOFF (yes|no): the two namespaces, the veths, the far VTEP. The
# switch side's underlay address is left to the variant (OVS puts it on its br-phy).
# UNDERLAY_TXOFF: transmit checksum offload off on the far VTEP's underlay veth. OVS (AF_XDP)
# and vswitch builds before 2026-12-07 need it: with it on, the far vxlan device hands over its
# inner TCP checksums unfinished and its TCP segments whole (veth passes the CHECKSUM_PARTIAL
# state and the GSO packet on; a NIC would finish them). vswitch now notices both.
topo_up() {
    topo_down
    ip netns add $NS1; ip netns add $NS2
    track_netns $NS1; track_netns $NS2
    ip link add vx-v1 type veth peer name vx-v1p netns $NS1
    ip link add vx-u0 type veth peer name vx-u0p netns $NS2
    track_link vx-v1; track_link vx-u0
    ip link set vx-v1 up; ip link set vx-u0 up
    ip -n $NS1 link set lo up; ip -n $NS2 link set lo up
    ip -n $NS1 link set vx-v1p mtu 1450
    ip -n $NS1 addr add 10.98.0.1/24 dev vx-v1p; ip -n $NS1 link set vx-v1p up
    ip -n $NS2 addr add 10.97.0.2/30 dev vx-u0p; ip -n $NS2 link set vx-u0p up
    ip -n $NS2 link add vx0 type vxlan id 42 remote 10.97.0.1 local 10.97.0.2 dstport $VX_PORT dev vx-u0p
    ip -n $NS2 addr add 10.98.0.2/24 dev vx0; ip -n $NS2 link set vx0 up
    [[ $1 == yes ]] && ip netns exec $NS1 ethtool -K vx-v1p tx off >/dev/null 2>&1
    [[ $2 == yes ]] && ip netns exec $NS2 ethtool -K vx-u0p tx off >/dev/null 2>&1
    return 0
}

vsw_up() { # vsw_up MODE CSUM
    rm -rf "$VSW_RUN"; mkdir -p "$VSW_RUN"
    VSW_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat > "$VSW_RUN/vswitchd.toml" <<TOML
[api]
listen = "127.0.0.1:$VSW_PORT"
[datapath]
pmd_cores = [1]
run_dir = "$VSW_RUN/run"
TOML
    "$VBIN/vswitchd" --config "$VSW_RUN/vswitchd.toml" --state-dir "$VSW_RUN/state" \
        > "$VSW_RUN/vswitchd.log" 2>&1 &
    VSW_PID=$!
    track_pid $VSW_PID
    wait_until 30 vctl list-br || { log "vswitchd did not start"; return 1; }
    ip addr add 10.97.0.1/30 dev vx-u0
    vctl add-br br-vx && track_link br-vx
    vctl add-port br-vx vx-v1 type=system mode="$1" || return 1
    vctl add-port br-vx vxt type=vxlan remote_ip=10.97.0.2 local_ip=10.97.0.1 key=42 dst_port=$VX_PORT \
        ${2:+csum=$2} || return 1
}
vsw_down() {
    vctl dump-ports br-vx > "$1/ports.txt" 2>&1
    vctl pmd-stats-show > "$1/pmd-stats.txt" 2>&1
    stop_pid "$VSW_PID" 10; VSW_PID=""
    cp "$VSW_RUN/vswitchd.log" "$1/" 2>/dev/null
    ip link del br-vx 2>/dev/null
    return 0
}

ovs_up() {
    ip link del br-vx 2>/dev/null; ip link del br-phy 2>/dev/null
    ovs_start_daemons "$OVS_RUN" false
    track_link br-vx; track_link br-phy
    kvsctl add-br br-vx -- set bridge br-vx datapath_type=netdev || return 1
    kvsctl add-port br-vx vx-v1 -- set interface vx-v1 type=afxdp options:xdp-mode=native \
        || return 1
    kvsctl add-port br-vx vxt -- set interface vxt type=vxlan options:remote_ip=10.97.0.2 \
        options:local_ip=10.97.0.1 options:key=42 options:dst_port=$VX_PORT || return 1
    kvsctl add-br br-phy -- set bridge br-phy datapath_type=netdev || return 1
    kvsctl add-port br-phy vx-u0 -- set interface vx-u0 type=afxdp options:xdp-mode=native \
        || return 1
    ip addr add 10.97.0.1/30 dev br-phy; ip link set br-phy up
    sleep 2
    # OVS's router learns the kernel's routes; its ARP cache fills from traffic through br-phy.
    kappctl ovs/route/add 10.97.0.2/32 br-phy >/dev/null 2>&1
    ping -c 2 -i 0.2 -W 1 10.97.0.2 >/dev/null 2>&1
    local p e err=""
    for p in vx-v1 vx-u0 vxt; do
        e=$(kvsctl get interface $p error 2>/dev/null)
        [[ -n $e && $e != '[]' ]] && err+="$p: $e; "
    done
    [[ -z $err ]] || { log "ovs port error: $err"; return 1; }
}
ovs_down() {
    [[ -S $OVS_RUN/ovs-vswitchd.ctl ]] || return 0
    kappctl dpif-netdev/pmd-stats-show > "$1/pmd-stats.txt" 2>&1
    kappctl tnl/arp/show > "$1/tnl-arp.txt" 2>&1
    kappctl ovs/route/show > "$1/ovs-route.txt" 2>&1
    kvsctl --columns=name,type,options,statistics,error list interface > "$1/ovs-interfaces.txt" 2>&1
    kvsctl --if-exists del-br br-vx >/dev/null 2>&1
    kvsctl --if-exists del-br br-phy >/dev/null 2>&1
    kappctl exit --cleanup >/dev/null 2>&1
    wait_until 10 bash -c "[ ! -f $OVS_RUN/ovs-vswitchd.pid ]"
    ovs-appctl -t "$OVS_RUN/ovsdb-server.ctl" exit >/dev/null 2>&1
    cp "$OVS_RUN/ovs-vswitchd.log" "$1/" 2>/dev/null
    ip link del br-vx 2>/dev/null; ip link del br-phy 2>/dev/null
    return 0
}

# variant_up V OUT: builds the topology and the switch of V; variant_down V OUT undoes it.
variant_up() {
    case $1 in
        linuxbr|linuxbr-txoff)
            if [[ $1 == linuxbr ]]; then topo_up no no; else topo_up no yes; fi
            ip addr add 10.97.0.1/30 dev vx-u0
            ip link add vx-k0 type vxlan id 42 remote 10.97.0.2 local 10.97.0.1 dstport $VX_PORT dev vx-u0
            ip link add vx-br type bridge
            ip link set vx-v1 master vx-br; ip link set vx-k0 master vx-br
            ip link set vx-k0 up; ip link set vx-br up
            wait_until 5 bash -c "bridge link show dev vx-k0 | grep -q forwarding" ;;
        vswitch-afpacket) topo_up no no; VBIN=$BIN; vsw_up afpacket true ;;
        vswitch-before) topo_up no yes; VBIN=${VSW_BASELINE:?set VSW_BASELINE}; vsw_up afpacket "" ;;
        vswitch-afpacket-nocsum) topo_up no no; VBIN=$BIN; vsw_up afpacket false ;;
        vswitch-afxdp) topo_up yes no; VBIN=$BIN; vsw_up afxdp true ;;
        ovs-afxdp) topo_up yes yes; ovs_up ;;
        *) die "unknown variant $1" ;;
    esac
}
variant_down() {
    case $1 in
        vswitch-*) vsw_down "$2" ;;
        ovs-*) ovs_down "$2" ;;
    esac
    topo_down
}

ours_pids() {
    echo $IPERF_PID $VSW_PID $(pgrep -x iperf3) $(cat "$OVS_RUN"/*.pid 2>/dev/null) $(pgrep ksoftirqd)
}

# measure V DIR REP OUT: one iperf3 TCP test, appended to the CSV.
measure() {
    local v=$1 dir=$2 r=$3 out=$4 args="-t $DURATION -J ${IPERF_EXTRA:-}" cpid f
    [[ $dir == out ]] && args+=" -R"
    # shellcheck disable=SC2046
    quiet_gate $(ours_pids)
    # shellcheck disable=SC2086
    ip netns exec $NS1 timeout $(( DURATION + 20 )) iperf3 -c 10.98.0.2 $args \
        > "$out/$dir.json" 2>&1 &
    cpid=$!
    sleep 1
    # shellcheck disable=SC2046
    f=$(foreign_cpu_pct $(( DURATION - 2 )) $(ours_pids))
    wait $cpid
    python3 - "$out/$dir.json" "$v" "$dir" "$r" "$f" >> "$CSV" <<'EOF'
import json, sys
path, v, d, r, f = sys.argv[1:]
try:
    t = json.load(open(path))
    g = t["end"]["sum_received"]["bits_per_second"] / 1e9
    retr = t["end"]["sum_sent"].get("retransmits", 0)
except Exception:
    g, retr = float("nan"), -1
print(f"{v},{d},{r},{g:.3f},{retr},{f}")
EOF
    log "$v $dir rep $r: $(tail -1 "$CSV")"
}

for (( r=1; r<=REPS; r++ )); do
    for v in "${VARIANTS[@]}"; do
        out=$RESULTS/raw/$v-$r
        mkdir -p "$out"
        log "rep $r: $v"
        if ! variant_up "$v" > "$out/setup.log" 2>&1; then
            log "$v: setup failed (see $out/setup.log)"
            for d in $DIRS; do echo "$v,$d,$r,nan,-1,-1" >> "$CSV"; done
            variant_down "$v" "$out" >> "$out/setup.log" 2>&1
            continue
        fi
        if ! ip netns exec $NS1 ping -c 3 -i 0.2 -W 1 10.98.0.2 > "$out/ping.txt" 2>&1 \
            && ! ip netns exec $NS1 ping -c 3 -i 0.5 -W 2 10.98.0.2 >> "$out/ping.txt" 2>&1; then
            log "$v: no connectivity"
            for d in $DIRS; do echo "$v,$d,$r,nan,-1,-1" >> "$CSV"; done
            variant_down "$v" "$out" >> "$out/setup.log" 2>&1
            continue
        fi
        ip netns exec $NS2 iperf3 -s -B 10.98.0.2 > "$out/iperf3-server.log" 2>&1 &
        IPERF_PID=$!
        track_pid $IPERF_PID
        wait_until 10 bash -c "ip netns exec $NS2 ss -ltn | grep -q ':5201 '" || die "iperf3 server did not start"
        for d in $DIRS; do measure "$v" "$d" "$r" "$out"; sleep 1; done
        variant_down "$v" "$out" >> "$out/setup.log" 2>&1
    done
done

python3 - "$CSV" "${FOREIGN_MAX:-15}" "${VARIANTS[@]}" > "$RESULTS/vxlan.md" <<'EOF'
import csv, statistics, sys
path, fmax, variants = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
rows = list(csv.DictReader(open(path)))
def med(v, d):
    xs = [r for r in rows if r["variant"] == v and r["dir"] == d and r["gbps"] != "nan"]
    clean = [r for r in xs if 0 <= float(r["foreign_pct"]) < fmax]
    use = clean or xs
    if not use:
        return None, 0, len(xs)
    return statistics.median(float(r["gbps"]) for r in use), len(clean), len(xs)
dirs = sorted({r["dir"] for r in rows}, key=lambda d: ("into", "out").index(d) if d in ("into", "out") else 9)
print("| variant | " + " | ".join(f"{d} Gbit/s (min-max) | {d} / linuxbr | clean" for d in dirs) + " |")
print("|---|" + "---|---|---|" * len(dirs))
for v in variants:
    cells = []
    for d in dirs:
        m, c, n = med(v, d)
        base, _, _ = med("linuxbr", d)
        xs = [float(r["gbps"]) for r in rows if r["variant"] == v and r["dir"] == d and r["gbps"] != "nan"]
        rng = f"{min(xs):.2f}-{max(xs):.2f}" if xs else "-"
        ratio = f"{m / base:.2f}" if m is not None and base else "-"
        cells.append(f"{m:.2f} ({rng})" if m is not None else "failed")
        cells += [ratio, f"{c}/{n}"]
    print(f"| {v} | " + " | ".join(cells) + " |")
EOF
cat "$RESULTS/vxlan.md"
log "results in $RESULTS"
