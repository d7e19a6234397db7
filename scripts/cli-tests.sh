#!/usr/bin/env bash
# End-to-end checks of the graft command: every fixture case through `graft run` against the
# ONNX Runtime and PyTorch references (tolerance 1e-4), and bad input giving a clear error and a
# non-zero exit, never a crash.
set -uo pipefail
cd "$(dirname "$0")/.."
# Env: SCRATCH (SwiftPM scratch path, default .build), as scripts/abi-tests.sh.
scratch=${SCRATCH:-.build}
swift build --scratch-path "$scratch" --product graft >/dev/null || exit 1
graft="$(swift build --scratch-path "$scratch" --show-bin-path)/graft"
fixtures=Tests/Fixtures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

ok()   { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*"; }

# 1. Fixtures: every case of every model, against both references.
for model in "$fixtures"/*/model.onnx; do
    dir=$(dirname "$model")
    for case in "$dir"/*/inputs; do
        case=$(dirname "$case")
        for ref in ort torch; do
            if out=$("$graft" run "$model" --input-dir "$case/inputs" --expect "$case/$ref" --threads 2 2>&1); then ok
            else fail "graft run $case vs $ref: $out"; fi
        done
    done
done

# 2. Outputs written as .npy that read back identically through --expect.
m="$fixtures/bert_torchscript"
if "$graft" run "$m/model.onnx" --input-dir "$m/basic/inputs" --output-dir "$tmp" >/dev/null &&
   "$graft" run "$m/model.onnx" --input-dir "$m/basic/inputs" --expect "$tmp" --tolerance 0 >/dev/null; then ok
else fail "--output-dir round trip"; fi

# 3. Bad input: exit code 2 and an 'error:' line naming the problem.
expect_error() {   # expect_error "what" "fragment" cmd...
    local what=$1 fragment=$2; shift 2
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -q "error:.*$fragment" <<<"$out"; then ok
    else fail "$what: exit $rc, output: $out"; fi
}
printf 'not a model' > "$tmp/garbage.onnx"
head -c 300 "$m/model.onnx" > "$tmp/truncated.onnx"
printf 'nonsense' > "$tmp/bad.npy"
expect_error "missing model" "cannot open" "$graft" inspect "$tmp/none.onnx"
expect_error "garbage model" "not a valid ONNX" "$graft" inspect "$tmp/garbage.onnx"
expect_error "truncated model" "" "$graft" run "$tmp/truncated.onnx" --input-dir "$m/basic/inputs"
expect_error "bad npy" "not a valid .npy" "$graft" run "$m/model.onnx" --input input_ids="$tmp/bad.npy" --input-dir "$m/basic/inputs"
expect_error "unknown input" "'nope' is not an input" "$graft" run "$m/model.onnx" --input nope="$m/basic/inputs/input_ids.npy" --input-dir "$m/basic/inputs"
expect_error "wrong dtype" "must be int64" "$graft" run "$m/model.onnx" --input input_ids="$fixtures/vit_torchscript/basic/inputs/pixel_values.npy" --input-dir "$m/basic/inputs"
expect_error "missing input" "input 'attention_mask' is missing" "$graft" run "$m/model.onnx" --input input_ids="$m/basic/inputs/input_ids.npy" --input token_type_ids="$m/basic/inputs/token_type_ids.npy"
expect_error "bad --input" "NAME=FILE" "$graft" run "$m/model.onnx" --input justaname
expect_error "weight limit" "GRAFT_LIMIT_WEIGHT_BYTES" "$graft" run "$m/model.onnx" --input-dir "$m/basic/inputs" --limit weight-bytes=1000
expect_error "tensor limit" "GRAFT_LIMIT_TENSOR_BYTES" "$graft" run "$m/model.onnx" --input-dir "$m/basic/inputs" --limit GRAFT_LIMIT_TENSOR_BYTES=100
expect_error "unknown limit" "unknown limit 'nope'" "$graft" run "$m/model.onnx" --input-dir "$m/basic/inputs" --limit nope=3
if "$graft" run "$m/model.onnx" --input-dir "$m/basic/inputs" --expect "$m/basic/ort" --limit weight-bytes=100000000 >/dev/null; then ok
else fail "a limit above what the model needs changes nothing"; fi

# 4. graft bench --profile: the per-operator table names the MatMuls (12 in bert: the projections;
#    the attention products run inside its 2 FusedAttention nodes) and a total.
if out=$("$graft" bench "$m/model.onnx" --iterations 2 --warmup 1 --vocab 200 --dim batch=2 --dim sequence=8 --profile 2>&1) &&
   grep -q "^profile " <<<"$out" && grep -qE "^  MatMul +12 " <<<"$out" &&
   grep -qE "^  FusedAttention +2 " <<<"$out" && grep -qE "^  total " <<<"$out"; then ok
else fail "graft bench --profile: $out"; fi

# 5. Adapters on the command line: a VLoRA adapter (weights generated from one image's features,
#    --aux) against the PyTorch reference, unmerged and merged; a PEFT LoRA through bench; and the
#    clear errors when the auxiliary tensor is missing, unread, or badly given.
l="$fixtures/llama_torchscript" v="$fixtures/vlora"
vlora=(--adapter "$v/llama_qv_r4" --aux image_features="$v/refs/features/img0.npy")
for merge in "" --merged; do
    if out=$("$graft" run "$l/model.onnx" --input-dir "$l/basic/inputs" "${vlora[@]}" $merge --expect "$v/refs/single" 2>&1); then ok
    else fail "graft run with a VLoRA adapter $merge: $out"; fi
done
if out=$("$graft" bench "$m/model.onnx" --iterations 2 --warmup 1 --vocab 200 --dim batch=2 --dim sequence=8 --adapter "$fixtures/adapters/bert/lora_qv_r8" 2>&1) &&
   grep -qE "^adapters +lora_qv_r8 \(" <<<"$out"; then ok
else fail "graft bench --adapter: $out"; fi
expect_error "VLoRA without --aux" "auxiliary input 'image_features'" "$graft" run "$l/model.onnx" --input-dir "$l/basic/inputs" --adapter "$v/llama_qv_r4"
expect_error "--aux without a generator" "no bound or per-row adapter" "$graft" run "$l/model.onnx" --input-dir "$l/basic/inputs" --aux image_features="$v/refs/features/img0.npy"
expect_error "bad --aux" "NAME=FILE" "$graft" run "$l/model.onnx" --input-dir "$l/basic/inputs" "${vlora[@]}" --aux justaname
expect_error "unknown adapter" "" "$graft" run "$l/model.onnx" --input-dir "$l/basic/inputs" --adapter "$tmp/none"

echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
