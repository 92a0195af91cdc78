#!/usr/bin/env bash
# Runs every test of the workspace, after installing what the tests need on a fresh Debian
# machine (as root). Tests that need root or a package skip loudly when it is truly absent.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v ping >/dev/null || need_pkgs+=(iputils-ping)
command -v iperf3 >/dev/null || need_pkgs+=(iperf3)
if [ ${#need_pkgs[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    else
        echo "WARNING: not root; cannot install ${need_pkgs[*]}: tests needing them will skip" >&2
    fi
fi

cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
