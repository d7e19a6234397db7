#!/usr/bin/env bash
# Robustness smoke (docs/ROBUSTNESS.md): a short fuzz run of every target from the committed
# corpus (FUZZ_SECONDS each, default 10) and the concurrency stress test. Prints one line per
# check and, last, `robustness: N passed, N failed`. Exits non-zero when anything failed.
#
# Env: FUZZ_SECONDS (per target), FUZZ_INSTRUMENT (1: libGraftC built with ASan + libFuzzer
# coverage, the default; 0: plain release library, faster to build), SCRATCH_TEST (scratch
# path for the concurrency test, default .build-robust), TSAN=1 to run the concurrency test
# under ThreadSanitizer instead (scripts/sanitizers.sh tsan: scratch .build-tsan, slower, builds
# a separate tree), CONCURRENCY=0 to skip the concurrency test (CI: scripts/test.sh already runs
# it with the whole suite, and scripts/sanitizers.sh under TSan).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=/opt/swift/usr/bin:$PATH
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
passed=0
failed=0
source scripts/lib/check.sh
check() {   # check NAME COMMAND...: into a temporary log, shown (its tail) only on failure
    local name=$1
    shift
    local log
    log=$(mktemp /tmp/graft-robustness.XXXXXX)
    timed_check "$name" "$log" '^(fuzz |ConcurrencyTests:|sanitizers:)' "" "$@" ||
        tail -40 "$log" | sed 's/^/    /'
    rm -f "$log"
}

# Fuzz smoke: fresh work dir, so each run starts from the committed seeds only.
if [[ -z ${FUZZ_WORK:-} ]]; then
    FUZZ_WORK=$(mktemp -d /tmp/graft-fuzz-smoke.XXXXXX)
    trap 'if [[ $failed == 0 ]]; then rm -rf "$FUZZ_WORK"; else echo "fuzz inputs and logs kept in $FUZZ_WORK"; fi' EXIT
fi
export FUZZ_WORK
for t in model_load adapter_load npy; do
    check "fuzz $t" scripts/fuzz.sh "$t" "$FUZZ_SECONDS"
done

concurrency() {
    if [[ ${TSAN:-0} == 1 ]]; then
        PLAIN_SCRATCH=${SCRATCH_TEST:-.build-robust} TSAN_RUNS=1 scripts/sanitizers.sh tsan
    else
        local scratch=${SCRATCH_TEST:-.build-robust}
        swift build --build-tests --scratch-path "$scratch" &&
        swift test --skip-build --scratch-path "$scratch" --filter ConcurrencyTests
    fi
}
[[ ${CONCURRENCY:-1} == 0 ]] || check "concurrency" concurrency

echo "robustness: $passed passed, $failed failed"
[[ $failed == 0 ]]
