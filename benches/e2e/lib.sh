# shellcheck shell=bash
# Shared set-up of the benches/e2e runners: sourced after ROOT is set.

SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
[[ -d $SHARED ]] || { echo "no harness at $SHARED (set SHARED_BENCH)" >&2; exit 2; }
scratch=${BENCH_SCRATCH:-/tmp/vswitch-e2e}

# e2e_prepare PROGRAM:PACKAGE... : installs the Debian packages of the programs that are
# missing (a PROGRAM with a / is checked as a file), then builds vswitchd and vswitchctl.
e2e_prepare() {
    local need=() spec prog pkgs
    for spec in "$@"; do
        prog=${spec%%:*} pkgs=${spec#*:}
        if [[ $prog == */* ]]; then [[ -x $prog ]] && continue
        else command -v "$prog" >/dev/null && continue; fi
        # shellcheck disable=SC2206
        need+=(${pkgs//,/ })
    done
    if (( ${#need[@]} )); then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
    (cd "$ROOT" && cargo build --release -p cli --bins && cargo build --release -p vswitch-benches --bin xcore_probe)
}
