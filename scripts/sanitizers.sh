#!/usr/bin/env bash
# Sanitizer runs (docs/ROBUSTNESS.md, "Sanitizers and leaks"):
#
#   scripts/sanitizers.sh asan   # the whole Swift test suite under AddressSanitizer + LeakSanitizer
#   scripts/sanitizers.sh tsan   # the concurrency stress tests under ThreadSanitizer
#   scripts/sanitizers.sh all    # both (the default)
#
# asan: builds the tests with --sanitize=address in $ASAN_SCRATCH (default .build-asan) and
#   runs every test; LeakSanitizer is on, with Tests/Fuzz/lsan.supp suppressing the test
#   runner's and Foundation's own process-lifetime allocations. Fails on any test failure or
#   any AddressSanitizer/LeakSanitizer report.
# tsan: builds the tests with --sanitize=thread in $TSAN_SCRATCH (default .build-tsan) and runs
#   ConcurrencyTests $TSAN_RUNS times (default 2; races are timing-dependent). A TSan-built
#   Swift plugin cannot be dlopened by the TSan test executable (__tsan_external_write is not
#   exported by its static runtime), so GRAFT_PLUGIN_PATH points at the uninstrumented LoRA
#   plugin of an ordinary debug build in $PLAIN_SCRATCH (default .build, which scripts/test.sh
#   has built already in CI). Fails on a test failure or any "WARNING: ThreadSanitizer".
#
# Prints one line per run and, last, `sanitizers: N passed, N failed`, with build and run times.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH=/opt/swift/usr/bin:$PATH
WHICH=${1:-all}
ASAN_SCRATCH=${ASAN_SCRATCH:-.build-asan}
TSAN_SCRATCH=${TSAN_SCRATCH:-.build-tsan}
PLAIN_SCRATCH=${PLAIN_SCRATCH:-.build}
[[ $PLAIN_SCRATCH == /* ]] || PLAIN_SCRATCH=$ROOT/$PLAIN_SCRATCH
TSAN_RUNS=${TSAN_RUNS:-2}
LOGS=${SANITIZER_LOGS:-$(mktemp -d /tmp/graft-sanitizers.XXXXXX)}
mkdir -p "$LOGS"
passed=0
failed=0

source scripts/lib/check.sh
# check NAME LOG COMMAND...: runs COMMAND into LOG (kept), prints PASS/FAIL with the time taken
# and, on failure, the sanitizer reports, test failures and tail of LOG.
check() {
    local name=$1 log=$2
    shift 2
    timed_check "$name" "$log" 'Test run with|Executed [0-9]+ tests|ConcurrencyTests:' ", log $log" "$@" || {
        grep -E -A12 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer' "$log" | head -40 | sed 's/^/    /'
        grep -E '✘|error:' "$log" | head -10 | sed 's/^/    /'
        tail -20 "$log" | sed 's/^/    /'
    }
}

# Each run writes to stdout (the log `check` opened as $log) and then fails on a sanitizer
# report in it even when the tests passed.
asan_run() {
    LSAN_OPTIONS=suppressions=$ROOT/Tests/Fuzz/lsan.supp ASAN_OPTIONS=detect_leaks=1 \
        swift test --skip-build --sanitize=address --scratch-path "$ASAN_SCRATCH" || return 1
    ! grep -qE 'ERROR: (Address|Leak)Sanitizer' "$log"
}

tsan_run() {
    GRAFT_PLUGIN_PATH=$PLAIN_SCRATCH/debug/libGraftPluginLoRA.so \
        swift test --skip-build --sanitize=thread --scratch-path "$TSAN_SCRATCH" --filter ConcurrencyTests || return 1
    ! grep -q 'WARNING: ThreadSanitizer' "$log"
}

if [[ $WHICH == asan || $WHICH == all ]]; then
    check "asan build" "$LOGS/asan-build.log" swift build --build-tests --sanitize=address --scratch-path "$ASAN_SCRATCH"
    if [[ $failed == 0 ]]; then
        log=$LOGS/asan-test.log
        check "asan tests" "$log" asan_run
    fi
fi

if [[ $WHICH == tsan || $WHICH == all ]]; then
    before=$failed
    check "tsan build (plain LoRA plugin)" "$LOGS/plain-build.log" swift build --product GraftPluginLoRA --scratch-path "$PLAIN_SCRATCH"
    check "tsan build" "$LOGS/tsan-build.log" swift build --build-tests --sanitize=thread --scratch-path "$TSAN_SCRATCH"
    if [[ $failed == "$before" ]]; then
        for i in $(seq 1 "$TSAN_RUNS"); do
            log=$LOGS/tsan-run$i.log
            check "tsan concurrency run $i" "$log" tsan_run
        done
    fi
fi

echo "sanitizers: $passed passed, $failed failed (logs in $LOGS)"
[[ $failed == 0 ]]
