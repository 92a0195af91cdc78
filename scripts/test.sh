#!/usr/bin/env bash
# Runs every test of the workspace, after installing what the tests need on a fresh Debian
# machine (as root). Tests that need root or a package skip loudly when it is truly absent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v ping >/dev/null || need_pkgs+=(iputils-ping)
command -v iperf3 >/dev/null || need_pkgs+=(iperf3)
# dpdk-testpmd (the VM side of the vhost-user tests) is in dpdk-dev, not in dpdk; without
# recommends it still brings the virtio-user and vhost PMDs.
command -v dpdk-testpmd >/dev/null || need_pkgs+=(dpdk-dev)
command -v stdbuf >/dev/null || need_pkgs+=(coreutils)
# The QEMU guests of testkit (testkit::qemu): the emulator, and busybox for the guest's
# initramfs (built once, with the kernel package fetched by `apt-get download`).
command -v qemu-system-x86_64 >/dev/null || need_pkgs+=(qemu-system-x86)
command -v busybox >/dev/null || need_pkgs+=(busybox-static)
# Reads back the pcap files of the capture tests.
command -v tcpdump >/dev/null || need_pkgs+=(tcpdump)
# Turns checksum offload off in namespaces behind AF_XDP ports (cli/tests/vm.rs).
command -v ethtool >/dev/null || need_pkgs+=(ethtool)
# ovs-ofctl is the reference the flow parser is compared with (flow-table/tests/ofctl_parity.rs)
# and the OpenFlow codec's oracle (openflow/tests/ofp_print.rs, flow_mod_capture.rs).
command -v ovs-ofctl >/dev/null || need_pkgs+=(openvswitch-switch)
# The soak script (scripts/soak.sh) drives the REST API with curl and jq.
command -v curl >/dev/null || need_pkgs+=(curl)
command -v jq >/dev/null || need_pkgs+=(jq)
# The private Open vSwitch the flow-semantics differential test compares with
# (cli/tests/ovs_diff.rs, testkit::ovs); it never uses the system instance the package starts.
command -v ovs-vswitchd >/dev/null || [ -x /usr/sbin/ovs-vswitchd ] || need_pkgs+=(openvswitch-switch)
# The controller tests (cli/tests/controllers.rs): an os-ken app run by Debian's os-ken 2.5
# (/usr/bin/osken-manager under /usr/bin/python3), and faucet from PyPI in a virtual
# environment (below), which needs venv, and a compiler and Python's headers for pytricia.
[ -x /usr/bin/osken-manager ] || need_pkgs+=(python3-os-ken)
python3 -c 'import ensurepip' 2>/dev/null || need_pkgs+=(python3-venv)
command -v gcc >/dev/null || need_pkgs+=(gcc)
[ -e "/usr/include/python3.$(python3 -c 'import sys; print(sys.version_info[1])')/Python.h" ] ||
    need_pkgs+=(python3-dev)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    else
        echo "WARNING: not root; cannot install ${need_pkgs[*]}: tests needing them will skip" >&2
    fi
fi
command -v dpdk-testpmd >/dev/null || echo "WARNING: no dpdk-testpmd: vhost-user tests will skip" >&2

# faucet 1.10 (cli/tests/controllers.rs) in its own virtual environment, with the versions it
# was tested with (cli/tests/controllers/faucet-constraints.txt); about a minute the first
# time, nothing once there. DEBINSTALL=1: faucet's setup.py would otherwise copy its sample
# configuration to /etc/faucet.
faucet_venv=/opt/vswitch-tests/faucet-venv
faucet_version=1.10.12
if ! "$faucet_venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('faucet') != '$faucet_version')" 2>/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        rm -rf "$faucet_venv"
        if python3 -m venv "$faucet_venv" &&
            DEBINSTALL=1 "$faucet_venv/bin/pip" install -q --disable-pip-version-check \
                -c cli/tests/controllers/faucet-constraints.txt "faucet==$faucet_version"; then
            echo "faucet $faucet_version installed in $faucet_venv"
        else
            rm -rf "$faucet_venv"
            echo "WARNING: cannot install faucet $faucet_version: the faucet tests will skip" >&2
        fi
    else
        echo "WARNING: not root; cannot install faucet: the faucet tests will skip" >&2
    fi
fi

# 2 MB hugepages for testpmd (128 MB per instance) and the switch's pools. The tests grow the
# pool themselves if they can; doing it here first fails early and visibly.
if [ "$(id -u)" = 0 ]; then
    if ! grep -qs ' hugetlbfs ' /proc/mounts; then
        mkdir -p /dev/hugepages
        mount -t hugetlbfs -o pagesize=2M none /dev/hugepages ||
            echo "WARNING: cannot mount hugetlbfs: testpmd tests will skip" >&2
    fi
    hp=/sys/kernel/mm/hugepages/hugepages-2048kB
    if [ -r $hp/free_hugepages ]; then
        free=$(cat $hp/free_hugepages)
        if [ "$free" -lt 512 ]; then
            echo $(($(cat $hp/nr_hugepages) + 512 - free)) > $hp/nr_hugepages ||
                echo "WARNING: cannot grow the hugepage pool" >&2
        fi
        echo "hugepages: $(cat $hp/free_hugepages) of $(cat $hp/nr_hugepages) 2 MB pages free"
    else
        echo "WARNING: no 2 MB hugepages in this kernel: testpmd tests will skip" >&2
    fi
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --all-targets "$@" 2>&1 | tee "$log" || status=$?
if [ "$status" = 0 ]; then
    cargo test --workspace --doc 2>&1 | tee -a "$log" || status=$?
fi
# One closing line over every test binary (cargo prints one per binary, the last often a
# crate with no doc tests).
passed=$(grep -o '^test result: [A-Za-z]*\. [0-9]* passed' "$log" | awk '{s+=$4} END {print s+0}')
failed=$(grep -o '[0-9]* failed;' "$log" | awk '{s+=$1} END {print s+0}')
echo "tests: $passed passed, $failed failed"
exit "$status"
