#!/usr/bin/env bash
# Installs everything onnx-compress and its tests need on a fresh Debian machine with Node 20:
# the ONNX conformance suite (Debian's libonnx-testdata) and the npm dependencies (which builds dist/).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -d /usr/share/libonnx-testdata/data/node ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libonnx-testdata >/dev/null
fi

# onnxruntime-node ships its CPU binaries; skip its optional download of extra (CUDA) binaries.
# The optional @tensorflow/tfjs-node(-gpu) installs download libtensorflow and may fail: npm skips them.
export ONNXRUNTIME_NODE_INSTALL=skip
npm ci --no-audit --no-fund
