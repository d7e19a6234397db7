#!/usr/bin/env bash
# Tests of the C ABI and the bindings (issue 4):
#  0. Tests/ABI/adapters.c: plugin loader errors (Tests/ABI/bad_plugin.c variants) and PEFT
#     adapters through the C ABI against PyTorch + PEFT references; Tests/ABI/vlora.c: generated
#     per-image weights (auxiliary inputs, request adapters) against PyTorch references;
#  1. libGraftC.so exports exactly the functions graft.h declares, and nothing else (nm -D);
#  2. C programs built as C99 and as C++17 (-Wall -Wextra -Werror) against include/graft.h:
#     Tests/ABI/errors.c (every symbol, every error path, _Static_assert on struct layouts) and
#     Tests/ABI/run_fixture.c (every fixture case against the ORT and PyTorch references);
#  3. the C++ RAII wrappers (bindings/cpp/graft.hpp, Tests/ABI/raii.cpp);
#  4. scripts/install.sh PREFIX, then a program built with `pkg-config --cflags --libs graft`;
#  5. `pip install` of bindings/python (library next to the package) and its pytest suite.
# Env: SCRATCH (SwiftPM scratch path, default .build), ABI_SKIP_PIP=1 (use PYTHONPATH and
# GRAFT_LIBRARY instead of pip installing, e.g. offline). Last line: "abi: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scratch=${SCRATCH:-.build}
fixtures=Tests/Fixtures
tolerance=1e-4
passed=0 failed=0
ok()   { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }
finish() { echo "abi: $passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }
# check "what" cmd...: one check; prints the command's output when it fails.
check() {
    local what=$1 out; shift
    if out=$("$@" 2>&1); then ok; else fail "$what"; echo "$out" | tail -25; fi
}

if ! swift build --scratch-path "$scratch" --product GraftC >/dev/null 2>&1 ||
   ! swift build --scratch-path "$scratch" --product graft >/dev/null 2>&1; then
    fail "swift build (GraftC, graft)"; finish
fi
bin=$(swift build --scratch-path "$scratch" --show-bin-path)
lib="$bin/libGraftC.so"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. Exports: exactly graft.h's functions.
exported=$(nm -D --defined-only --extern-only "$lib" | awk '{print $NF}' | sort)
declared=$(grep -E '^GRAFT_API' -A2 include/graft.h | grep -oE 'graft_[a-z0-9_]+\(' | tr -d '(' | sort -u)
others=$(grep -v '^graft_' <<<"$exported")
if [ -z "$others" ]; then ok; else fail "non-graft_ symbols exported: $(echo $others | head -c 400)"; fi
if [ "$exported" = "$declared" ]; then ok
else fail "exports differ from graft.h: $(diff <(echo "$declared") <(echo "$exported") | grep '^[<>]' | tr '\n' ' ')"; fi

# 2. C and C++ programs against the header.
flags=(-Wall -Wextra -Werror -Iinclude -ITests/ABI)
link=(-L"$bin" -lGraftC -Wl,-rpath,"$bin")
check "errors.c as C99" gcc -std=c99 "${flags[@]}" Tests/ABI/errors.c -o "$tmp/errors_c99" "${link[@]}"
check "errors.c as C++17" g++ -x c++ -std=c++17 "${flags[@]}" Tests/ABI/errors.c -o "$tmp/errors_cxx" "${link[@]}"
check "run_fixture.c as C99" gcc -std=c99 "${flags[@]}" Tests/ABI/run_fixture.c -o "$tmp/run_c99" "${link[@]}" -lm
check "run_fixture.c as C++17" g++ -x c++ -std=c++17 "${flags[@]}" Tests/ABI/run_fixture.c -o "$tmp/run_cxx" "${link[@]}"
check "raii.cpp as C++17" g++ -std=c++17 "${flags[@]}" -Ibindings/cpp Tests/ABI/raii.cpp -o "$tmp/raii" "${link[@]}"
check "adapters.c as C99" gcc -std=c99 "${flags[@]}" Tests/ABI/adapters.c -o "$tmp/adapters_c99" "${link[@]}" -lm
check "adapters.c as C++17" g++ -x c++ -std=c++17 "${flags[@]}" Tests/ABI/adapters.c -o "$tmp/adapters_cxx" "${link[@]}"
check "vlora.c as C99" gcc -std=c99 "${flags[@]}" Tests/ABI/vlora.c -o "$tmp/vlora_c99" "${link[@]}" -lm
check "vlora.c as C++17" g++ -x c++ -std=c++17 "${flags[@]}" Tests/ABI/vlora.c -o "$tmp/vlora_cxx" "${link[@]}"
# Broken plugins for the loader's error paths.
mkdir -p "$tmp/bad"
for variant in BAD_MAJOR NO_ENTRY NULL_TABLE SMALL_TABLE NULL_LOAD; do
    lower=$(tr 'A-Z' 'a-z' <<<"$variant")
    check "bad plugin $variant" gcc -std=c99 -shared -fPIC -fvisibility=hidden -Wall -Wextra -Werror -Iinclude \
        -D"$variant" Tests/ABI/bad_plugin.c -o "$tmp/bad/$lower.so"
done

for prog in errors_c99 errors_cxx; do
    if [ -x "$tmp/$prog" ]; then
        out=$("$tmp/$prog" "$fixtures" 2>&1); rc=$?
        echo "$prog: $(tail -1 <<<"$out")"
        if [ $rc -eq 0 ]; then ok; else fail "$prog"; grep FAIL <<<"$out" | head -20; fi
    fi
done

# Adapters and plugins through the C ABI (the plugins beside libGraftC.so in the build folder).
for prog in adapters_c99 adapters_cxx; do
    if [ -x "$tmp/$prog" ]; then
        out=$("$tmp/$prog" "$fixtures" "$tmp/bad" 2>&1); rc=$?
        echo "$prog: $(tail -1 <<<"$out")"
        if [ $rc -eq 0 ]; then ok; else fail "$prog"; grep -E "FAIL|got|cannot|failed" <<<"$out" | head -20; fi
    fi
done

# VLoRA (generated per-image weights) through the C ABI, against the PyTorch references.
for prog in vlora_c99 vlora_cxx; do
    if [ -x "$tmp/$prog" ]; then
        out=$("$tmp/$prog" "$fixtures" 2>&1); rc=$?
        echo "$prog: $(tail -1 <<<"$out")"
        if [ $rc -eq 0 ]; then ok; else fail "$prog"; grep -E "FAIL|got|failed|max" <<<"$out" | head -20; fi
    fi
done

# Every fixture case: the C99 build against ORT, the C++ build against PyTorch.
for model in "$fixtures"/*/model.onnx; do
    dir=$(dirname "$model")
    for case in "$dir"/*/inputs; do
        case=$(dirname "$case")
        [ -x "$tmp/run_c99" ] && check "C99 $case vs ort" "$tmp/run_c99" "$model" "$case" ort "$tolerance" 2
        [ -x "$tmp/run_cxx" ] && check "C++ $case vs torch" "$tmp/run_cxx" "$model" "$case" torch "$tolerance" 1
    done
done

# 3. C++ RAII wrappers (with a fixture run).
if [ -x "$tmp/raii" ]; then
    out=$("$tmp/raii" "$fixtures/bert_torchscript/model.onnx" "$fixtures/bert_torchscript/basic" ort 2>&1); rc=$?
    echo "raii: $(tail -1 <<<"$out")"
    if [ $rc -eq 0 ]; then ok; else fail "raii"; grep -E "FAIL|fixture" <<<"$out" | head; fi
fi

# 4. Install under a prefix; build and run a program through pkg-config.
prefix="$tmp/prefix"
if out=$(SCRATCH=$scratch CONFIG=debug scripts/install.sh "$prefix" 2>&1); then
    ok
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
    if cflags=$(pkg-config --cflags graft) && libs=$(pkg-config --libs graft); then
        check "pkg-config build" g++ -std=c++17 -Wall -Wextra -Werror $cflags -ITests/ABI Tests/ABI/raii.cpp \
            -o "$tmp/raii_pc" $libs -Wl,-rpath,"$prefix/lib"
        check "pkg-config program runs" "$tmp/raii_pc"
        check "pkg-config program uses the installed library" bash -c "ldd '$tmp/raii_pc' | grep -q '$prefix/lib/libgraft.so'"
    else fail "pkg-config --cflags --libs graft"; fi
else fail "scripts/install.sh"; echo "$out" | tail; fi

# 5. Python: pip install with the library next to the package, then pytest.
export GRAFT_CLI="$bin/graft"
# The installed package carries the library but not the plugins: point at the build's.
export GRAFT_PLUGIN_PATH="$bin"
py=python3
unset GRAFT_LIBRARY
if [ "${ABI_SKIP_PIP:-0}" = 1 ]; then
    export PYTHONPATH="$root/bindings/python" GRAFT_LIBRARY="$lib"
else
    cp -r bindings/python "$tmp/pysrc"
    rm -rf "$tmp/pysrc/build" "$tmp/pysrc"/*.egg-info
    cp "$lib" "$tmp/pysrc/graft/libgraft.so"
    if $py -m venv --system-site-packages "$tmp/venv" >/dev/null &&
       out=$("$tmp/venv/bin/pip" install --no-deps "$tmp/pysrc" 2>&1); then
        ok; py="$tmp/venv/bin/python"
    else
        fail "pip install bindings/python"; echo "$out" | tail -5
        export PYTHONPATH="$root/bindings/python" GRAFT_LIBRARY="$lib"
    fi
fi
out=$(cd "$tmp" && "$py" -m pytest -q -p no:cacheprovider "$root/bindings/python/tests" 2>&1); rc=$?
summary=$(tail -1 <<<"$out")
echo "pytest: $summary"
p=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+'); f=$(grep -oE '[0-9]+ (failed|error)' <<<"$summary" | grep -oE '[0-9]+' | awk '{s+=$1} END {print s+0}')
passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
if [ $rc -ne 0 ] && [ "${f:-0}" -eq 0 ]; then fail "pytest exited $rc"; echo "$out" | tail -20; fi
[ "${f:-0}" -gt 0 ] && grep -E '^(FAILED|ERROR)' <<<"$out" | head -30

finish
