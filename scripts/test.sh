#!/usr/bin/env bash
# All tests: native (flex CPU backend and wgpu over Vulkan — lavapipe where no GPU exists),
# and a wasm32 build check of the crates that run in the browser.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh

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
echo "== wasm32 build check =="
cargo check --locked --target wasm32-unknown-unknown -p shared -p runtime-wasm -p modelfile
echo "== all tests passed in $(( $(date +%s) - start )) s =="
