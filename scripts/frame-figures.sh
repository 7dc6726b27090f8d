#!/usr/bin/env bash
# The generative ConvNet figures of docs/frame.md, on this 2-core CPU in about half an hour:
#   textures  brick, grass, gravel (scikit-image, CC0): training | synthesis | 2× synthesis
#   objects   10 Fashion-MNIST sneakers (aligned objects, object net)
#   cd        contrastive divergence on 10 GIMP wood patterns: images and reconstructions
# Budget (CPU): 48×48 textures, filter counts halved (--width-divisor 2), T = 60 iterations per
# added layer, 8 chains of 96×96 (--chains 8 --chain-scale 2). The paper's settings are the defaults of
# `trainer frame train` (224×224, full widths, T = 700); pass EBM_FRAME_ARGS to change these.
#
# Usage: bash scripts/frame-figures.sh [DATA_DIR] [OUT_DIR]   (defaults: data/, runs/frame/)
# Needs the data of scripts/fetch-data.sh and a built trainer (cargo build -p trainer).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data}
out=${2:-runs/frame}
trainer=${TRAINER:-${CARGO_TARGET_DIR:-target}/debug/trainer}
device=${EBM_DEVICE:-flex}
read -r -a extra <<< "${EBM_FRAME_ARGS:-}"
mkdir -p "$out" docs/img

for texture in brick grass gravel; do
  rm -rf "$out/$texture"
  "$trainer" frame train --data "$data/textures/$texture.png" --run "$out/$texture" --image-size 48 --width-divisor 2 \
    --iterations 60 --chains 8 --chain-scale 2 --sample-every 60 --quiet --device "$device" "${extra[@]}"
  cp "$out/$texture/figure.png" "docs/img/frame-$texture.png"
done

rm -rf "$out/objects"
"$trainer" frame train --experiment objects --data "$data/fashion-mnist" --class 7 --limit 10 --run "$out/objects" \
  --image-size 32 --iterations 60 --sample-every 60 --quiet --device "$device" "${extra[@]}"
cp "$out/objects/figure.png" docs/img/frame-objects.png

rm -rf "$out/cd"
"$trainer" frame train --experiment reconstruction --data "$data/textures/gimp/Wood" --limit 10 --channels 3 --run "$out/cd" \
  --image-size 48 --width-divisor 2 --iterations 300 --sample-every 100 --quiet --device "$device" "${extra[@]}"
cp "$out/cd/reconstruction.png" docs/img/frame-cd.png
echo "figures in docs/img/frame-*.png; runs in $out"
