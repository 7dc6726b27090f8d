#!/usr/bin/env bash
# The GPU comparison in one run, on a machine with an NVIDIA GPU and PyTorch: ours on wgpu
# (Vulkan) beside PyTorch eager on CUDA (exact fp32, cuDNN autotuned), most important first —
# the short-run paper net at n_f 64 (batch 64, K 100, 32×32) with every trainer, then the
# multigrid cascade and a MEG iteration (CIFAR nets), n_f 32 and 128, the scaling table, and
# last the autodiff-tape reference (burn's naive loop). Every `trainer bench --torch` prints
# ours / PyTorch. Stages that no longer fit in BENCH_SECONDS (default 540) are skipped, so the
# run fits a ten-minute slot; everything goes to OUT_DIR/bench-gpu.log.
#
#   bash scripts/gpu-pack.sh                       # here: .gpu/trainer-{wgsl,spirv}.xz + loader
#   bash scripts/bench-gpu.sh [OUT_DIR] [PYTHON]   # there, in the repository root
#
# TRAINERS="name=path ..." runs other builds instead of the packed ones.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-gpu}
python=${2:-python3}
budget=${BENCH_SECONDS:-540}
mkdir -p "$out"
exec > >(tee "$out/bench-gpu.log") 2>&1

# A bare machine may lack the Vulkan loader (packed by gpu-pack.sh) or keep NVIDIA's ICD where
# the loader does not look.
if ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
  for deb in .gpu/libvulkan1_*.deb; do [ -f "$deb" ] && dpkg -x "$deb" / && ldconfig; done
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$nvidia_icd" ] && ! ls /usr/share/vulkan/icd.d/nvidia* /etc/vulkan/icd.d/nvidia* > /dev/null 2>&1; then
  export VK_DRIVER_FILES=$nvidia_icd
fi

names=()
paths=()
if [ -n "${TRAINERS:-}" ]; then
  for entry in $TRAINERS; do names+=("${entry%%=*}"); paths+=("${entry#*=}"); done
else
  # WGSL first: the tried path, which also checks the device below.
  for packed in .gpu/trainer-wgsl.xz .gpu/trainer-spirv.xz; do
    [ -f "$packed" ] || continue
    name=$(basename "$packed" .xz)
    xz -dc "$packed" > "/tmp/$name" && chmod +x "/tmp/$name" || exit 1
    names+=("${name#trainer-}")
    paths+=("/tmp/$name")
  done
fi
[ ${#names[@]} -gt 0 ] || { echo "no trainers: run scripts/gpu-pack.sh first, or set TRAINERS" >&2; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
"$python" -c 'import torch; print("torch", torch.__version__, torch.cuda.get_device_name(0))'

# `bench NAME TRAINER ARGS...`: one `trainer bench --device wgpu` run of at most 150 seconds,
# cut to what is left of the budget; skipped when less than a minute is left.
bench() {
  local name=$1 trainer=$2 limit=150
  shift 2
  local left=$((budget - SECONDS))
  if [ "$left" -lt 60 ]; then
    echo "== $name: skipped ($left s of the budget left): trainer bench $*"
    return
  fi
  [ "$left" -lt "$limit" ] && limit=$left
  echo "== $name ($((SECONDS)) s in, limit $limit s): trainer bench --device wgpu $*"
  timeout "$limit" "$trainer" bench --device wgpu "$@"
  echo "== $name: exit $?"
}
# The device must be the GPU, not a software adapter: a tiny run first.
check=$("${paths[0]}" bench --device wgpu --n-f 8 --batch 2 --steps 1 --repeats 1 --no-tape 2>&1) || {
  echo "$check"
  echo "no usable GPU through wgpu: stopping" >&2
  exit 1
}
echo "$check" | grep '^device:'
case $check in *llvmpipe* | *SwiftShader*) echo "wgpu picked a software adapter: stopping" >&2 && exit 1 ;; esac
for i in "${!names[@]}"; do
  bench "short-run n_f 64, ${names[$i]}" "${paths[$i]}" --n-f 64 --batch 64 --steps 100 --repeats 3 --no-tape --torch "$python"
done
first=${paths[0]}
bench "multigrid, ${names[0]}" "$first" --multigrid --batch 16 --steps 30 --repeats 3 --no-tape --torch "$python"
bench "MEG CIFAR, ${names[0]}" "$first" --meg cifar --batch 64 --repeats 3 --torch "$python"
for n_f in 32 128; do
  for i in "${!names[@]}"; do
    bench "short-run n_f $n_f, ${names[$i]}" "${paths[$i]}" --n-f "$n_f" --batch 64 --steps 100 --repeats 3 --no-tape --torch "$python"
  done
done
for i in "${!names[@]}"; do
  [ "$i" -eq 0 ] && continue
  bench "multigrid, ${names[$i]}" "${paths[$i]}" --multigrid --batch 16 --steps 30 --repeats 3 --no-tape --torch "$python"
  bench "MEG CIFAR, ${names[$i]}" "${paths[$i]}" --meg cifar --batch 64 --repeats 3 --torch "$python"
done
bench "sweep, ${names[0]}" "$first" --sweep --n-f 64 --batch 64 --image-size 32 --steps 20 --repeats 2
bench "short-run n_f 64 with the tape reference, ${names[0]}" "$first" --n-f 64 --batch 64 --steps 100 --repeats 1
echo "== done in $SECONDS s"
