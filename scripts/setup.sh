#!/usr/bin/env bash
# Installs everything onnx-compress and its tests need on a fresh Debian machine with Node 20:
# the ONNX conformance suite (Debian's libonnx-testdata), Chromium (the HTML report test opens reports in it)
# and the npm dependencies (which builds dist/).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
[ -d /usr/share/libonnx-testdata/data/node ] || missing+=(libonnx-testdata)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# onnxruntime-node ships its CPU binaries; skip its optional download of extra (CUDA) binaries.
# The optional @tensorflow/tfjs-node(-gpu) installs download libtensorflow and may fail: npm skips them.
export ONNXRUNTIME_NODE_INSTALL=skip
npm ci --no-audit --no-fund
