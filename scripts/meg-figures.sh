#!/usr/bin/env bash
# The MEG figures and tables of docs/meg.md, on this 2-core CPU in about 1.5 hours:
#   toy        25 gaussians, swiss roll, 8 gaussians: softmax(−E) on a grid over [−2, 2]² (250² for the
#              docs/meg.md; the paper's 500² is the command's default)
#              and 2 000 generator samples (2 000 iterations, widths ÷4, batch 256, Adam 1e-3)
#   classifier the project's MNIST classifier (3 epochs on the 60 000 training digits)
#   modes      3-StackedMNIST (600 iterations, widths ÷8, Adam 1e-4, λ 10 on the paper's per-sample
#              penalty — the code's per-pixel average let the energy run away at this budget):
#              modes of 1 000 and KL to uniform over 26 000 samples, generator alone and after
#              5 latent MALA steps
#   anomaly    MNIST, digits 1, 4, 5, 7, 9 held out in turn (150 iterations each, widths ÷8, λ 100):
#              AUPRC of E(x) and of ‖∇E(x)‖
# Pass EBM_MEG_ARGS to change the training settings of the image runs.
#
# Usage: bash scripts/meg-figures.sh [DATA_DIR] [OUT_DIR]   (defaults: data/, runs/meg/)
# Needs the data of scripts/fetch-data.sh and a built trainer (cargo build -p trainer).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-data}
out=${2:-runs/meg}
trainer=${TRAINER:-${CARGO_TARGET_DIR:-target}/debug/trainer}
device=(--device "${EBM_DEVICE:-flex}")
read -r -a extra <<< "${EBM_MEG_ARGS:-}"
mkdir -p "$out" docs/img

for toy in 25gaussians swissroll 8gaussians; do
  rm -rf "$out/$toy"
  "$trainer" meg train --toy "$toy" --run "$out/$toy" --iterations 2000 --batch 256 --lr 1e-3 --width-divisor 4 --quiet --sample-every 1000 "${device[@]}"
  "$trainer" meg density "$out/$toy/model.ebm" --resolution 250 --truth "$toy" --out "docs/img/meg-$toy-density.png" "${device[@]}" | tee -a "$out/toy.txt"
  "$trainer" meg sample "$out/$toy/model.ebm" --count 2000 --mala-steps 0 --out "docs/img/meg-$toy-samples.png" "${device[@]}"
done

"$trainer" meg classifier --data "$data/mnist" --epochs 3 --out "$out/mnist-classifier.ebm" "${device[@]}"

rm -rf "$out/stacked3"
"$trainer" meg train --dataset stacked-mnist --stacks 3 --data "$data/mnist" --run "$out/stacked3" --iterations 600 --width-divisor 8 --penalty sample --lambda 10 --quiet --sample-every 150 "${device[@]}" "${extra[@]}"
"$trainer" meg sample "$out/stacked3/model.ebm" --count 16 --mala-steps 0 --out docs/img/meg-stacked3-samples.png "${device[@]}"
for steps in 0 5; do
  "$trainer" meg modes "$out/stacked3/model.ebm" --classifier "$out/mnist-classifier.ebm" --samples 26000 --mala-steps "$steps" "${device[@]}" | tee -a "$out/modes.txt"
done

"$trainer" meg anomaly --data "$data/mnist" --digits 1,4,5,7,9 --iterations 150 --width-divisor 8 --out docs/meg-anomaly.md "${device[@]}"

echo "figures in docs/img/meg-*.png, tables in $out/toy.txt, $out/modes.txt and docs/meg-anomaly.md; runs in $out"
