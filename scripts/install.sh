#!/usr/bin/env bash
# Installs the C library, headers and pkg-config file under PREFIX:
#   PREFIX/lib/libgraft.so            (SwiftPM product GraftC, release build)
#   PREFIX/include/graft.h            (the C API)   PREFIX/include/graft.hpp (C++ RAII wrappers)
#   PREFIX/lib/pkgconfig/graft.pc     (pkg-config --cflags --libs graft)
# Usage: scripts/install.sh PREFIX   (env SCRATCH: SwiftPM scratch path, default .build;
#                                     env CONFIG: debug or release, default release)
# Then: PKG_CONFIG_PATH=PREFIX/lib/pkgconfig cc app.c $(pkg-config --cflags --libs graft)
# libgraft.so needs the Swift runtime (found through its RUNPATH in the toolchain).
set -euo pipefail
if [ $# -ne 1 ]; then echo "usage: $0 PREFIX" >&2; exit 2; fi
cd "$(dirname "$0")/.."
mkdir -p "$1"
prefix=$(cd "$1" && pwd)
scratch=${SCRATCH:-.build}
config=${CONFIG:-release}
swift build -c "$config" --scratch-path "$scratch" --product GraftC >/dev/null
bin=$(swift build -c "$config" --scratch-path "$scratch" --show-bin-path)
version=$(sed -n 's/^#define GRAFT_VERSION_STRING "\(.*\)"/\1/p' include/graft.h)
install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 755 "$bin/libGraftC.so" "$prefix/lib/libgraft.so"
install -m 644 include/graft.h bindings/cpp/graft.hpp "$prefix/include/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" bindings/pkgconfig/graft.pc.in > "$prefix/lib/pkgconfig/graft.pc"
echo "installed graft $version under $prefix"
