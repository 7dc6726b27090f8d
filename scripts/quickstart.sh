#!/usr/bin/env bash
# The main job: train a small short-run MCMC model on the bundled MNIST digits (GPU through wgpu
# when one is present, else the CPU) and write sample grids. Extra arguments go to
# `trainer train` (e.g. --iterations 2000, --data data/fashion-mnist, --preset paper, --run DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "quickstart: cargo is missing; install Rust with rustup first" >&2
  exit 1
fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ebm/target}"
# The Vulkan loader complains on every adapter query when this is unset.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

# The run folder: the caller's --run (with --resume: continue a killed run), else a fresh one.
run="runs/quickstart-$(date +%Y%m%d-%H%M%S)"
args=()
while [ $# -gt 0 ]; do
  case $1 in
    --run) run=${2:?quickstart: --run needs a folder}; shift 2 ;;
    --run=*) run=${1#--run=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
cargo build --locked -p trainer
trainer="$CARGO_TARGET_DIR/debug/trainer"
"$trainer" train --preset quick --run "$run" ${args[@]+"${args[@]}"}
"$trainer" sample "$run/model.ebm" --count 64 --chain-every 5 --out "$run/final"
"$trainer" interpolate "$run/model.ebm" --out "$run/final/interpolation.png"
echo
echo "run folder: $run"
echo "  samples during training: $run/samples/"
echo "  final samples:           $run/final/grid.png (chain: $run/final/chain.gif)"
echo "  model for the browser:   $run/model.ebm"
