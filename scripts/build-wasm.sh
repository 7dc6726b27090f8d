#!/usr/bin/env bash
# Builds the browser runtime into www/pkg/ (an npm-style package: ES module, worker client,
# TypeScript types, the wasm). Offline-friendly: plain cargo + wasm-bindgen, no wasm-pack.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ebm/target}"
tools="${EBM_TOOLS:-$HOME/.cache/ebm/tools}"
# wasm-bindgen's CLI must match the wasm-bindgen crate in Cargo.lock exactly.
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
if ! "$tools/bin/wasm-bindgen" --version 2>/dev/null | grep -qx "wasm-bindgen $version"; then
  echo "build-wasm: installing wasm-bindgen-cli $version into $tools (debug build: ~2 min instead of ~15)"
  cargo install wasm-bindgen-cli --version "$version" --debug --root "$tools"
fi

cargo build --locked --target wasm32-unknown-unknown -p runtime-wasm --profile wasm
out=www/pkg
rm -rf "$out"
mkdir -p "$out"
"$tools/bin/wasm-bindgen" --target web --no-typescript --remove-name-section --remove-producers-section --out-dir "$out" --out-name ebm_runtime \
  "$CARGO_TARGET_DIR/wasm32-unknown-unknown/wasm/runtime_wasm.wasm"
# One static module whose createGlue() gives each wasm instance its own glue state: what crash
# recovery needs, in a form bundlers follow (runtime-wasm/tools/glue-factory.mjs says why).
node runtime-wasm/tools/glue-factory.mjs "$out/ebm_runtime.js"
# wasm-opt -Oz halves the size (binaryen from npm: Debian's is too old for today's wasm). It
# takes minutes, so its output is cached by the input's hash.
wasm="$out/ebm_runtime_bg.wasm"
if [ "${EBM_WASM_OPT:-1}" = 1 ]; then
  (cd runtime-wasm/tools && npm ci --no-audit --no-fund --silent)
  cache="$CARGO_TARGET_DIR/wasm-opt-cache"
  mkdir -p "$cache"
  # The features rustc enabled (its target_features section) plus tail calls, extended
  # constants and GC, which every WebGPU-capable browser has (Chrome 119+, Firefox 141+,
  # Safari 26) and which let wasm-opt shrink the code by a further ~2 MB. --all-features would
  # also allow encodings browsers reject.
  features="--enable-bulk-memory --enable-bulk-memory-opt --enable-call-indirect-overlong --enable-multivalue
    --enable-mutable-globals --enable-nontrapping-float-to-int --enable-reference-types --enable-sign-ext --enable-simd
    --enable-tail-call --enable-extended-const --enable-gc"
  key=$( (sha256sum "$wasm"; echo $features) | sha256sum | cut -c1-32)
  if [ ! -f "$cache/$key.wasm" ]; then
    echo "build-wasm: wasm-opt -Oz (a few minutes)"
    runtime-wasm/tools/node_modules/.bin/wasm-opt -Oz $features "$wasm" -o "$cache/$key.tmp"
    mv "$cache/$key.tmp" "$cache/$key.wasm"
  fi
  cp "$cache/$key.wasm" "$wasm"
fi
cp runtime-wasm/js/{ebm.js,client.js,worker.js,element.js,draw.js,index.d.ts,worker.d.ts,element.d.ts,draw.d.ts,package.json,README.md} "$out/"
raw=$(stat -c %s "$out/ebm_runtime_bg.wasm")
gz=$(gzip -9 -c "$out/ebm_runtime_bg.wasm" | wc -c)
echo "build-wasm: $out/ebm_runtime_bg.wasm $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzip"
