#!/usr/bin/env bash
# Builds llama.cpp's llama-server, llama-quantize and llama-bench from the source vendored in the
# llama-cpp-python sdist, for system (e) of benchmarks/engine.py. Idempotent: a second run only
# re-runs cmake's (no-op) build. Never run in CI (it takes ~10 minutes at -j2).
#
#   benchmarks/llamacpp_build.sh [PREFIX]     # default $GUARD_HOME/llama.cpp or ~/.cache/guard/llama.cpp
#
# Prints the directory holding the binaries on its last line; benchmarks/llamacpp.py looks there.
set -euo pipefail

VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
PREFIX="${1:-${GUARD_HOME:+$GUARD_HOME/llama.cpp}}"
PREFIX="${PREFIX:-$HOME/.cache/guard/llama.cpp}"
JOBS="${JOBS:-2}"
PYTHON="${PYTHON:-python3}"

mkdir -p "$PREFIX"
sdist="$PREFIX/llama_cpp_python-$VERSION.tar.gz"
src="$PREFIX/llama_cpp_python-$VERSION"
if [ ! -f "$sdist" ]; then
  "$PYTHON" -m pip download --no-binary :all: --no-deps "llama-cpp-python==$VERSION" -d "$PREFIX"
fi
if [ ! -d "$src/vendor/llama.cpp" ]; then
  tar -xzf "$sdist" -C "$PREFIX"
fi

# CURL/OpenSSL off: no network access is needed (models are local files); the prebuilt web UI
# would be downloaded at configure time.
cmake -S "$src/vendor/llama.cpp" -B "$PREFIX/build" \
  -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF >"$PREFIX/cmake-configure.log" 2>&1 \
  || { tail -30 "$PREFIX/cmake-configure.log"; exit 1; }
cmake --build "$PREFIX/build" -j "$JOBS" --target llama-server llama-quantize llama-bench \
  >"$PREFIX/cmake-build.log" 2>&1 \
  || { grep -B2 -A10 "error" "$PREFIX/cmake-build.log" | tail -40; exit 1; }
echo "$PREFIX/build/bin"
