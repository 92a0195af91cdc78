#!/usr/bin/env bash
# The kernel path in one run: two namespaces joined by vswitch (AF_XDP ports, AF_PACKET ports,
# tap ports), by the Linux bridge, and by OVS's userspace datapath with AF_XDP ports; iperf3
# TCP Gbit/s and UDP 64-byte packets per second. Uses the company harness
# (../shared/bench/kernel_bridge_bench.sh) with benches/e2e/vswitch-kernel.sh added as its
# vswitch variants. Needs root; installs its packages. Not a test: CI does not run it.
#
#   benches/e2e/run-kernel.sh [--variant V]... [--reps 3] [--duration 10]
# Default variants: linuxbr linuxbr-nocsum ovs-afxdp vswitch-afxdp vswitch-afpacket vswitch-tap
# Results: benches/e2e/results/<date>-kernel/kernel.md
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/benches/e2e/lib.sh"
e2e_prepare iperf3:iperf3 ethtool:ethtool \
    /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk:openvswitch-switch-dpdk,dpdk

rm -rf "$scratch/kharness"; mkdir -p "$scratch"
cp -r "$SHARED" "$scratch/kharness"
h=$scratch/kharness
cp "$ROOT/benches/e2e/vswitch-kernel.sh" "$h/switches/vswitch-kernel.sh"
# Plug the vswitch variants into the harness's variant switch.
sed -i 's|^source "$HERE/switches/ovs.sh".*|&\nsource "$HERE/switches/vswitch-kernel.sh"|' "$h/kernel_bridge_bench.sh"
sed -i 's|^        \*) die "unknown variant $v";;|        vswitch-*) vsw_kern_variant "$v" "$out" \|\| true ;;\n&|' "$h/kernel_bridge_bench.sh"
grep -q vsw_kern_variant "$h/kernel_bridge_bench.sh" || { echo "could not patch the harness" >&2; exit 2; }
export VSW_ROOT=$ROOT

args=("$@")
if [[ " ${args[*]-} " != *" --variant "* ]]; then
    for v in linuxbr linuxbr-nocsum ovs-afxdp vswitch-afxdp vswitch-afpacket vswitch-tap; do
        args+=(--variant "$v")
    done
fi
results=${RESULTS_DIR:-$ROOT/benches/e2e/results/$(date +%Y%m%d-%H%M)-kernel}
mkdir -p "$results"
cd "$h"
./kernel_bridge_bench.sh --results "$results" "${args[@]}"
echo "results: $results"
