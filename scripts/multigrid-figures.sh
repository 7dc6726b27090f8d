#!/usr/bin/env bash
# The multigrid figures and inpainting table of docs/multigrid.md, on this 2-core CPU in about 1.5 hours:
#   samples   a multigrid model of 1 000 Fashion-MNIST ankle boots at 64×64 (15 epochs = 300 iterations):
#             the 4×4, 16×16 and 64×64 grids of 16 chains from scratch, and 16 chains from one 1×1 start
#   table     multigrid, single-grid, CD-1 and persistent CD learned conditionally (a 32×32 hole at a
#             random position per image), then scored on 200 held-out boots (test split) under the
#             square, doodle and pepper-and-salt masks: error and PSNR on the missing pixels
# Budget (CPU): widths ÷8 (--width-divisor 8), batch 50; everything else is the MatConvNet code's
# (L = 30 per grid, δ = 0.3, σ = 50, the normalised capped momentum SGD at 0.3 with its log decay).
# Pass EBM_MULTIGRID_ARGS to change the training settings of every run.
#
# Usage: bash scripts/multigrid-figures.sh [DATA_DIR] [OUT_DIR]   (defaults: data/, runs/multigrid/)
# Needs the data of scripts/fetch-data.sh and a built trainer (cargo build -p trainer).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data}
out=${2:-runs/multigrid}
trainer=${TRAINER:-${CARGO_TARGET_DIR:-target}/debug/trainer}
device=${EBM_DEVICE:-flex}
read -r -a extra <<< "${EBM_MULTIGRID_ARGS:-}"
common=(--data "$data/fashion-mnist" --class 9 --limit 1000 --batch-size 50 --width-divisor 8 --quiet --device "$device")
mkdir -p "$out" docs/img

rm -rf "$out/boots"
"$trainer" multigrid train "${common[@]}" --epochs 15 --run "$out/boots" --sample-every 40 "${extra[@]}"
for side in 4 16 64; do cp "$out/boots/grid$side.png" "docs/img/multigrid-grid$side.png"; done
cp "$out/boots/one-start/grid64.png" docs/img/multigrid-one-start.png
cp "$out/boots/model.ebm" www/models/multigrid-boots.ebm

for method in multigrid single-grid cd1 pcd; do
  rm -rf "$out/hole-$method"
  "$trainer" multigrid train "${common[@]}" --method "$method" --hole 32 --epochs 6 --run "$out/hole-$method" --sample-every 60 "${extra[@]}"
done

"$trainer" multigrid table --device "$device" --data "$data/fashion-mnist" --split test --class 9 --count 200 \
  --model MG="$out/hole-multigrid/model.ebm" --model SG="$out/hole-single-grid/model.ebm" \
  --model CD1="$out/hole-cd1/model.ebm" --model PCD="$out/hole-pcd/model.ebm" \
  --figures "$out/inpainting" --out docs/multigrid-inpainting.md
for name in MG SG CD1 PCD; do cp "$out/inpainting/$name-square.png" "docs/img/multigrid-inpaint-$name.png"; done
echo "figures in docs/img/multigrid-*.png, table in docs/multigrid-inpainting.md; runs in $out"
