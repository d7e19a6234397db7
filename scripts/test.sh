#!/usr/bin/env bash
# Runs every test: the Swift test targets (kernels, import, planner, fixtures against
# ONNX Runtime and PyTorch references, hostile files) and the CLI end-to-end checks.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build
swift test
bash scripts/cli-tests.sh
