#!/usr/bin/env bash
# The GPU benchmark in one run, for a machine with an NVIDIA GPU, a Vulkan loader and PyTorch:
# ours on wgpu (Vulkan) beside PyTorch eager on CUDA (fp32, cuDNN autotuned) for the short-run
# paper settings (n_f 32/64/128, batch 64, K 100, 32×32), the multigrid cascade and a MEG
# iteration, then the scaling table. Every `trainer bench --torch` prints the ratio
# ours / PyTorch; logs go to OUT_DIR.
#
#   cargo build --release -p trainer --features wgpu-tuned   # here; carried to the GPU machine
#   (also run it with a build without the feature: that is the autotune gain)
#   bash scripts/bench-gpu.sh [TRAINER] [OUT_DIR] [PYTHON]
#
# Without a Vulkan loader on the machine, unpack libvulkan1 first (see the device notes in the
# performance issue); VK_DRIVER_FILES may need to name NVIDIA's ICD json.
set -uo pipefail
trainer=${1:-${CARGO_TARGET_DIR:-target}/release/trainer}
out=${2:-bench-gpu}
python=${3:-python3}
mkdir -p "$out"
bench() {
  local name=$1
  shift
  echo "== $name: trainer bench $*"
  timeout 280 "$trainer" bench --device wgpu "$@" 2>&1 | tee "$out/$name.log"
}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$out/gpu.txt"
for n_f in 64 32 128; do
  bench "short-run-nf$n_f" --n-f "$n_f" --batch 64 --steps 100 --repeats 3 --torch "$python"
done
bench multigrid --multigrid --batch 16 --steps 30 --repeats 3 --torch "$python"
bench meg-cifar --meg cifar --batch 64 --repeats 3 --torch "$python"
bench sweep --sweep --n-f 64 --batch 64 --image-size 32 --steps 20 --repeats 2
