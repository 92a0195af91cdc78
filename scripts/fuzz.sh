#!/usr/bin/env bash
# Runs every fuzz target (cargo fuzz / libFuzzer, AddressSanitizer) for SECONDS each (default
# 60) and prints how many inputs each executed. Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain (sanitizers) and cargo-fuzz: `rustup toolchain install nightly`,
# `cargo install cargo-fuzz`. Seeds are in fuzz/corpus/<target>/ (never written to); what the
# fuzzer learns goes to fuzz/target/corpus/<target>/, crashes to fuzz/artifacts/<target>/.
# A crash makes the script fail; turn the artifact into a regression test (see README,
# "Reliability") before fixing it.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(flow_key flow_parser rest_json vhost_descriptors vhost_messages openflow_decode)
fi
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
nice -n 19 cargo +nightly fuzz build -O >/dev/null
status=0
printf '%-20s %14s %10s %s\n' target executions exec/s result
for t in "${targets[@]}"; do
    work=target/corpus/$t
    mkdir -p "$work"
    log=target/fuzz-$t.log
    if nice -n 19 cargo +nightly fuzz run -O "$t" "$work" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -max_len=65536 -rss_limit_mb=2048 \
        >"$log" 2>&1; then
        result=ok
    else
        result="CRASH (see fuzz/$log and fuzz/artifacts/$t/)"
        status=1
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    printf '%-20s %14s %10s %s\n' "$t" "${execs:-?}" "${rate:-?}" "$result"
done
exit $status
