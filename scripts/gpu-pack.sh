#!/usr/bin/env bash
# Packs what scripts/bench-gpu.sh needs on a GPU machine without a Rust toolchain into .gpu/
# (ignored by git): two release trainers with autotuned wgpu convolutions — WGSL shaders and
# SPIR-V shaders (`wgpu-spirv`) —, stripped and xz-compressed (≈ 11 MB each instead of 93 MB),
# and the Vulkan loader package, which bench-gpu.sh unpacks on a machine that has none.
# Copy the repository with .gpu/ there and run `bash scripts/bench-gpu.sh`.
#
#   bash scripts/gpu-pack.sh      # each build is a full feature set of burn: ≈ 30 min cold here
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
mkdir -p .gpu
for variant in wgsl spirv; do
  features=wgpu-tuned
  [ "$variant" = spirv ] && features+=,wgpu-spirv
  cargo build --release --locked -p trainer --bins --features "$features"
  strip -o ".gpu/trainer-$variant" "$target/release/trainer"
  xz -T0 -f ".gpu/trainer-$variant"
done
# The loader only (libvulkan.so.1); the GPU driver brings its own Vulkan ICD.
(cd .gpu && rm -f libvulkan1_*.deb && { apt-get download libvulkan1 || { apt-get update -qq && apt-get download libvulkan1; }; })
ls -l .gpu
