#!/usr/bin/env bash
# Installs what building and testing Graft needs on Debian 12: OpenBLAS, pkg-config, and the
# Python test packages (ONNX files are decoded by Graft's own reader: no protobuf, no libonnx).
# Safe to re-run: it installs only what is missing.
set -euo pipefail

packages=(libopenblas-dev pkg-config)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    echo "installing: ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
else
    echo "system packages present: ${packages[*]}"
fi

# Python side (bindings tests): numpy and pytest only.
if ! python3 -c "import numpy, pytest" 2>/dev/null; then
    python3 -m pip install --quiet numpy pytest
fi
