# Sourced by scripts/robustness.sh and scripts/sanitizers.sh: one timed check, counted in the
# caller's $passed / $failed.
#
# timed_check NAME LOG SUMMARY FAIL_NOTE COMMAND...: runs COMMAND with stdout and stderr into
# LOG. On success counts it passed and prints "PASS NAME (T s): " and the last line of LOG
# matching the extended regex SUMMARY; on failure counts it failed, prints
# "FAIL NAME (T s)FAIL_NOTE" and returns 1, so the caller prints the details it wants from LOG.
# COMMAND may read $log (LOG): a run that fails on a report in its own output does.
timed_check() {
    local name=$1 log=$2 summary=$3 note=$4
    shift 4
    local start=$SECONDS
    if "$@" >"$log" 2>&1; then
        passed=$((passed + 1))
        echo "PASS $name ($((SECONDS - start)) s): $(grep -E "$summary" "$log" | tail -1)"
    else
        failed=$((failed + 1))
        echo "FAIL $name ($((SECONDS - start)) s)$note"
        return 1
    fi
}
