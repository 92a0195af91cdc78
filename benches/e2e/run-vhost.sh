#!/usr/bin/env bash
# vswitch side by side with OVS-DPDK (and DPDK's testpmd "patch panel") on the VM path: one
# dpdk-testpmd plays both VMs over vhost-user, each switch forwards A -> B on one PMD core.
# Uses the company harness in ../shared/bench (copied to a scratch directory with
# benches/e2e/vswitch.sh as its vswitch adapter). Needs root; installs its packages.
#
#   benches/e2e/run-vhost.sh [--frames "64 1518"] [--switch ovs --switch vswitch --switch testpmd]
#                            [vhost_bench.sh options...]
#   e.g. benches/e2e/run-vhost.sh --frames "64 1518" --flows "1 1000 100000" --reps 3 --duration 10 --rounds 2
#
# Results: benches/e2e/results/<date>/compare.md (per row: Mpps and cycles/packet of each switch,
# ratios vswitch / OVS-DPDK, over all windows and within each of the VM's modes), vhost.md (the
# harness's own table), xcore.log (the mode probe), raw data. Not a test: CI does not run it
# (the datapath-only bench, `--bench pipeline`, runs briefly under `cargo test`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/benches/e2e/lib.sh"
e2e_prepare dpdk-testpmd:dpdk-dev \
    /usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk:openvswitch-switch-dpdk,dpdk

rm -rf "$scratch/harness"; mkdir -p "$scratch"
cp -r "$SHARED" "$scratch/harness"
cp "$ROOT/benches/e2e/vswitch.sh" "$scratch/harness/switches/vswitch.sh"
# The patch panel with its cycles recorded (see the file) in place of the harness's own.
cp "$ROOT/benches/e2e/testpmd.sh" "$scratch/harness/switches/testpmd.sh"
export VSW_ROOT=$ROOT

frames=64
args=()
while (( $# )); do
    case $1 in
        --frames) frames=$2; shift 2;;
        *) args+=("$1"); shift;;
    esac
done
if [[ " ${args[*]-} " != *" --switch "* ]]; then
    args=(--switch ovs --switch vswitch --switch testpmd "${args[@]}")
fi
results=${RESULTS_DIR:-$ROOT/benches/e2e/results/$(date +%Y%m%d-%H%M)}
mkdir -p "$results"
# The VM's mode (how fast a cache line crosses between the two cores; it changes every few
# tens of seconds) is logged beside the run, so that compare.py can also compare each row
# within one mode. Each sample takes both cores for about 0.1-0.4 ms every 500 ms.
"$ROOT/target/release/xcore_probe" --every-ms 500 >> "$results/xcore.log" &
probe=$!
trap 'kill $probe 2>/dev/null || true' EXIT
cd "$scratch/harness"
for fr in $frames; do
    ./vhost_bench.sh --results "$results" --frame "$fr" "${args[@]}"
done
kill $probe 2>/dev/null || true
python3 "$ROOT/benches/e2e/compare.py" "$results" > "$results/compare.md"
cat "$results/compare.md"
echo "results: $results"
