#!/usr/bin/env bash
# Builds and runs one libFuzzer target for SECONDS (docs/ROBUSTNESS.md).
#
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer flags...]
#   TARGET: model_load | adapter_load | npy | all
#
# model_load / adapter_load: C harnesses (Tests/Fuzz/*.c) compiled with
#   clang -fsanitize=fuzzer,address and linked against a release libGraftC.so. By default
#   (FUZZ_INSTRUMENT=1) the library, its C/C++ parts and the plugins are built with
#   AddressSanitizer and libFuzzer coverage too (swift build --sanitize=address
#   -Xswiftc -sanitize=fuzzer ...) in $SCRATCH (default .build-fuzz); FUZZ_INSTRUMENT=0 links
#   the ordinary uninstrumented release library from $SCRATCH (default .build-fuzz-plain)
#   instead (only the harness is instrumented: crashes are still caught, coverage is not).
# npy: GraftCore's Npy.swift and the files it needs, compiled with the Swift harness
#   Tests/Fuzz/npy_fuzz.swift into one executable with swiftc -sanitize=fuzzer,address
#   (graft.h exposes no .npy reader; this is the CLI's reading code itself).
#
# The corpus grows in $FUZZ_WORK/<target> (default /tmp/graft-fuzz/<target>, never
# committed); Tests/Fuzz/corpus/<target> are the committed seeds (read only). Crashes are
# written to $FUZZ_WORK/artifacts/<target>/. Prints libFuzzer's final stats and a summary
# line: `fuzz TARGET: N runs in S s (R exec/s), cov C, ft F, corpus K, findings X`.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TARGET=${1:?usage: scripts/fuzz.sh model_load|adapter_load|npy|all SECONDS [libFuzzer flags]}
SECONDS_=${2:?usage: scripts/fuzz.sh TARGET SECONDS}
shift 2
EXTRA=("$@")
export PATH=/opt/swift/usr/bin:$PATH
# The toolchain's own clang: its ASan and libFuzzer runtimes are the ones swift build links
# (a system clang of another version would bring a second, mismatched runtime).
CLANG=${CLANG:-$(dirname "$(readlink -f "$(command -v swift)")")/clang}
INSTRUMENT=${FUZZ_INSTRUMENT:-1}
if [[ $INSTRUMENT == 1 ]]; then SCRATCH=${SCRATCH:-.build-fuzz}; else SCRATCH=${SCRATCH:-.build-fuzz-plain}; fi
WORK=${FUZZ_WORK:-/tmp/graft-fuzz}
# Harness binaries live in the scratch tree (reused by every FUZZ_WORK).
BIN=$ROOT/$SCRATCH/harness
mkdir -p "$BIN" "$WORK"

if [[ $TARGET == all ]]; then
    rc=0
    for t in model_load adapter_load npy; do "$0" "$t" "$SECONDS_" "${EXTRA[@]}" || rc=1; done
    exit $rc
fi

build_library() {
    local flags=()
    if [[ $INSTRUMENT == 1 ]]; then
        flags=(--sanitize=address -Xswiftc -sanitize=fuzzer -Xcc -fsanitize=fuzzer-no-link)
    fi
    for p in GraftC GraftPluginLoRA GraftPluginMoELoRA GraftPluginIA3; do
        swift build -c release --product "$p" --scratch-path "$SCRATCH" "${flags[@]}" >"$WORK/build-$p.log" 2>&1 \
            || { tail -30 "$WORK/build-$p.log"; echo "fuzz: building $p failed"; exit 2; }
    done
    LIBDIR=$ROOT/$SCRATCH/release
}

case $TARGET in
model_load|adapter_load)
    build_library
    "$CLANG" -g -O1 -fuse-ld=lld -fsanitize=fuzzer,address -I include -I Tests/Fuzz "Tests/Fuzz/${TARGET}_fuzz.c" \
        -L "$LIBDIR" -lGraftC -Wl,-rpath,"$LIBDIR" -o "$BIN/$TARGET" || { echo "fuzz: harness build failed"; exit 2; }
    ;;
npy)
    NPY_SOURCES=(Sources/GraftCore/IO/Npy.swift Sources/GraftCore/IO/MappedFile.swift Sources/GraftCore/Tensor/*.swift
                 Sources/GraftCore/GraftError.swift Tests/Fuzz/npy_fuzz.swift)
    if [[ ! -x $BIN/npy || -n $(find "${NPY_SOURCES[@]}" -newer "$BIN/npy") ]]; then
        swiftc -O -use-ld=lld -parse-as-library -package-name Graft -module-name GraftCore -sanitize=fuzzer,address \
            "${NPY_SOURCES[@]}" -o "$BIN/npy" 2>&1 \
            | grep -v "Cannot export local symbol" || true
        [[ -x $BIN/npy ]] || { echo "fuzz: npy harness build failed"; exit 2; }
    fi
    ;;
*) echo "unknown target $TARGET (model_load, adapter_load, npy, all)"; exit 2 ;;
esac

mkdir -p "$WORK/$TARGET" "$WORK/artifacts/$TARGET"
LOG=$WORK/$TARGET.log
# Leak detection stays on (ASAN_OPTIONS detect_leaks=1): a leak is a finding too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
# Graft refuses single allocations over this (limitExceeded) instead of growing past the
# fuzzer's RSS limit: a graph that legitimately computes a huge tensor is not a finding.
export GRAFT_MAX_TENSOR_BYTES=${GRAFT_MAX_TENSOR_BYTES:-$((1 << 28))}
export GRAFT_FUZZ_MODEL=${GRAFT_FUZZ_MODEL:-$ROOT/Tests/Fixtures/bert_dynamo/model.onnx}
MAXLEN=(-max_len=65536)
# Replay the inputs of past findings first (each must now run clean).
shopt -s nullglob
REGRESSIONS=(Tests/Fuzz/regressions/$TARGET/*)
if ((${#REGRESSIONS[@]})); then
    "$BIN/$TARGET" -timeout=20 -rss_limit_mb=3072 "${REGRESSIONS[@]}" >"$WORK/$TARGET-regressions.log" 2>&1 \
        || { tail -40 "$WORK/$TARGET-regressions.log"; echo "fuzz $TARGET: a regression input fails again"; exit 1; }
    echo "fuzz $TARGET: ${#REGRESSIONS[@]} regression inputs replayed clean"
fi
"$BIN/$TARGET" -max_total_time="$SECONDS_" -timeout=20 -rss_limit_mb=3072 -print_final_stats=1 \
    "${MAXLEN[@]}" -artifact_prefix="$WORK/artifacts/$TARGET/" "${EXTRA[@]}" \
    "$WORK/$TARGET" "Tests/Fuzz/corpus/$TARGET" >"$LOG" 2>&1
status=$?
runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$LOG" | grep -o '[0-9]*$' | tail -1)
secs=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$LOG" | grep -o 'in [0-9]*' | grep -o '[0-9]*' | tail -1)
rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$LOG" | grep -o '[0-9]*$' | tail -1)
last=$(grep -E '^#[0-9]+' "$LOG" | tail -1)
cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*')
ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*')
corp=$(grep -o 'corp: [0-9]*' <<<"$last" | grep -o '[0-9]*')
crashes=$(grep '^artifact_prefix=.*Test unit written' "$LOG" | grep -vc '/slow-unit-')
grep -E '^(==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)' "$LOG" | head -10
echo "fuzz $TARGET: ${runs:-0} runs in ${secs:-?} s (${rate:-0} exec/s), cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}, findings $crashes (log $LOG, exit $status)"
[[ $status == 0 ]]
