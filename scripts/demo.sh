#!/usr/bin/env bash
# The demo: inspect a small BERT-style encoder that ships in the repo (exported by PyTorch's
# dynamo exporter with external weights), run it on shipped inputs, and compare the result
# with ONNX Runtime's and PyTorch's outputs for the same inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product graft
graft=.build/release/graft
fixture=Tests/Fixtures/bert_dynamo
echo "== graft inspect $fixture/model.onnx"
"$graft" inspect "$fixture/model.onnx"
echo
echo "== graft run (compared with ONNX Runtime)"
"$graft" run "$fixture/model.onnx" --input-dir "$fixture/basic/inputs" --expect "$fixture/basic/ort"
echo
echo "== graft run (compared with PyTorch)"
"$graft" run "$fixture/model.onnx" --input-dir "$fixture/basic/inputs" --expect "$fixture/basic/torch"
