#!/usr/bin/env bash
# The browser benchmark, headless: wasm size, time to the first image, Langevin steps/s of the
# bundled model on WebGPU (SwiftShader here) and on the CPU fallback, against TensorFlow.js
# running the same net in the same page. Writes bench-browser.json; pass e.g. '?steps=20&count=16'.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
[ -f www/pkg/ebm_runtime_bg.wasm ] || bash scripts/build-wasm.sh
(cd tests/browser && npm ci --no-audit --no-fund --silent)
(cd tests/browser/tfjs && npm ci --no-audit --no-fund --silent)
node tests/browser/run.mjs --www www --bench bench-browser.json --query "${1:-?steps=20&count=16&repeats=2}"
