#!/usr/bin/env bash
# The demo: a small BERT-style encoder that ships in the repo (exported by PyTorch's dynamo
# exporter, weights in external data) and two PEFT LoRA adapters made for it. Graft inspects
# the model, then runs the same inputs under the base model, each adapter, and a mixed batch
# (row 1 adapter 1, row 2 the base model, row 3 adapter 2), printing how far each output is
# from PyTorch + PEFT's, and how long loading and swapping adapters take.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release   # the graft command and the adapter plugins beside it
graft=.build/release/graft
fixture=Tests/Fixtures/bert_dynamo
adapters=Tests/Fixtures/adapters/bert
echo "== graft inspect $fixture/model.onnx"
"$graft" inspect "$fixture/model.onnx"
echo
echo "== graft run (the base model, compared with ONNX Runtime)"
"$graft" run "$fixture/model.onnx" --input-dir "$fixture/basic/inputs" --expect "$fixture/basic/ort"
echo
echo "== graft adapters (compared with PyTorch + PEFT)"
"$graft" adapters "$fixture/model.onnx" \
    --adapter lora_qv_r8="$adapters/lora_qv_r8" --adapter rslora_r16="$adapters/rslora_r16" \
    --input-dir "$fixture/basic/inputs" --reference-dir "$adapters/refs" \
    --mixed lora_qv_r8,-,rslora_r16 --mixed-input-dir "$adapters/refs/mixed/inputs"
