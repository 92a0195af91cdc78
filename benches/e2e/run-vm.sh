#!/usr/bin/env bash
# vswitch side by side with OVS-DPDK on real VMs (QEMU guests of testkit on vhost-user ports,
# both socket roles): scenario PASS/FAIL, iperf3 TCP with and without offloads, live-migration
# downtime and lost pings. Builds in release, then runs benches/src/bin/vm_compare.rs.
# Needs root, QEMU, openvswitch-switch-dpdk and 512 free 2 MB hugepages (OVS takes 1024 MB);
# stop nothing else that uses CPU 1 (both switches put their PMD thread there).
#
#   benches/e2e/run-vm.sh [--rounds N (2)] [--secs S (10)] [--switch vswitch|ovs]...
#                         [--role server|client]... [--ovs-tso true|false]
#
# Results: benches/e2e/results/<YYYYMMDD-HHMM>-vm/vm.md (tables), vm.json and vm.csv (raw),
# run.log (progress), logs/ (vswitchd and OVS logs of each session).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
cd "$ROOT"
cargo build --release -p cli --bins
cargo build --release -p vswitch-benches --bin vm_compare

free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages)
if (( free < 512 )); then
    echo "only $free free 2 MB hugepages; OVS-DPDK needs 512 (echo N > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages)" >&2
    exit 2
fi
mountpoint -q /dev/hugepages || { echo "hugetlbfs is not mounted at /dev/hugepages" >&2; exit 2; }

results=${RESULTS_DIR:-$ROOT/benches/e2e/results/$(date +%Y%m%d-%H%M)-vm}
mkdir -p "$results"
# A whole default run is about 2 rounds x 2 switches x 2 roles x ~1.5 min.
timeout --kill-after=30 ${VM_BENCH_TIMEOUT:-1800} \
    "$CARGO_TARGET_DIR/release/vm_compare" --out "$results" "$@" 2> >(tee "$results/run.log" >&2)
echo "results: $results"
