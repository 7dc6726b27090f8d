#!/usr/bin/env bash
# The browser benchmark, headless: wasm size, time to the first image, Langevin steps/s of the
# bundled model on WebGPU (SwiftShader here) and on the CPU fallback, against TensorFlow.js
# running the same net in the same page. Writes bench-browser.json.
#
#   bash scripts/bench-browser.sh                      # the default query
#   bash scripts/bench-browser.sh '?steps=20&count=16'  # another query (see www/bench.html)
#   bash scripts/bench-browser.sh --sweep               # also the scaling table: batch, canvas
#                                                       # size and n_f 8/32/64 models
set -euo pipefail
cd "$(dirname "$0")/.."
query='?steps=20&count=16&repeats=2'
if [ "${1:-}" = --sweep ]; then
  # Models of other widths for the n_f column: one training iteration each (their speed does
  # not depend on what they learned), built with the release trainer.
  cargo build --release -p trainer
  trainer="${CARGO_TARGET_DIR:-target}/release/trainer"
  rm -rf www/models/sweep && mkdir -p www/models/sweep
  models=()
  for n_f in 8 32 64; do
    run=$(mktemp -d)
    "$trainer" train --data assets/mnist-mini --channels 1 --image-size 32 --n-f "$n_f" --batch 4 \
      --iterations 1 --steps 1 --device flex --quiet --run "$run" >/dev/null
    cp "$run/model.ebm" "www/models/sweep/nf$n_f.ebm"
    rm -rf "$run"
    models+=("models/sweep/nf$n_f.ebm")
  done
  query="?steps=4&count=16&repeats=1&multigrid=&sweep=1&sweepModels=$(IFS=,; echo "${models[*]}")"
elif [ -n "${1:-}" ]; then
  query=$1
fi
bash scripts/setup.sh
[ -f www/pkg/ebm_runtime_bg.wasm ] || bash scripts/build-wasm.sh
(cd tests/browser && npm ci --no-audit --no-fund --silent)
(cd tests/browser/tfjs && npm ci --no-audit --no-fund --silent)
node tests/browser/run.mjs --www www --bench bench-browser.json --query "$query"
