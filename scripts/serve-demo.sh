#!/usr/bin/env bash
# Builds the browser runtime and serves the demo page (www/) with its bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build-wasm.sh
exec node scripts/serve.mjs --root www --port "${PORT:-8000}"
