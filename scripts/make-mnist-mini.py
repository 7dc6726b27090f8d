#!/usr/bin/env python3
"""Writes assets/mnist-mini/: the first 2000 MNIST training digits and the first 500 test digits
as gzip IDX files (the layout the trainer reads), from a folder of the original IDX files
(scripts/fetch-data.sh puts them in data/mnist/). Deterministic: gzip mtime 0. Optional
arguments take other counts and one class only (assets/fashion-boots/: the first 300 training
and 100 test ankle boots of Fashion-MNIST, class 9).

Usage: python3 scripts/make-mnist-mini.py data/mnist assets/mnist-mini
       python3 scripts/make-mnist-mini.py data/fashion-mnist assets/fashion-boots 300 100 9
"""
import gzip
import os
import struct
import sys

TRAIN, TEST = 2000, 500


def find(folder, *names):
    for name in names:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return path
    sys.exit(f"{folder}: none of {names}")


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return shape, data[4 + 4 * dims:]


def write_idx(path, magic_type, shape, payload):
    header = bytes([0, 0, magic_type, len(shape)]) + struct.pack(">" + "I" * len(shape), *shape)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(header + payload)


def main():
    source, target = sys.argv[1], sys.argv[2]
    train, test = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else (TRAIN, TEST)
    wanted = int(sys.argv[5]) if len(sys.argv) > 5 else None
    os.makedirs(target, exist_ok=True)
    for split, count, stem in [("train", train, "train"), ("t10k", test, "t10k")]:
        images = find(source, f"{stem}-images-idx3-ubyte", f"{stem}-images.idx3-ubyte", f"{stem}-images-idx3-ubyte.gz")
        labels = find(source, f"{stem}-labels-idx1-ubyte", f"{stem}-labels.idx1-ubyte", f"{stem}-labels-idx1-ubyte.gz")
        (n, rows, cols), pixels = read_idx(images)
        (m,), label_bytes = read_idx(labels)
        size = rows * cols
        chosen = [i for i in range(n) if wanted is None or label_bytes[i] == wanted][:count]
        assert n == m and len(chosen) == count, (n, m, count, len(chosen))
        write_idx(os.path.join(target, f"{split}-images-idx3-ubyte.gz"), 8, (count, rows, cols), b"".join(pixels[i * size:(i + 1) * size] for i in chosen))
        write_idx(os.path.join(target, f"{split}-labels-idx1-ubyte.gz"), 8, (count,), bytes(label_bytes[i] for i in chosen))
        print(f"{split}: {count} of {n} images")


if __name__ == "__main__":
    main()
