#!/usr/bin/env python3
"""Writes assets/textures/{brick,grass,gravel}.png: scikit-image's 512x512 CC0 texture photos
(CC0Textures Bricks25, Grass001, Gravel04; scripts/fetch-data.sh puts them in data/textures/)
reduced to 128x128 by 4x4 block averaging, as 8-bit gray PNGs. Standard library only;
deterministic.

Usage: python3 scripts/make-texture-assets.py data/textures assets/textures
"""
import os
import struct
import sys
import zlib

FACTOR = 4


def read_gray_png(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit(f"{path}: not a PNG")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour != 0 or interlace != 0:
        sys.exit(f"{path}: expected an 8-bit gray non-interlaced PNG")
    raw = zlib.decompress(idat)
    rows, previous = [], bytearray(width)
    for y in range(height):
        kind = raw[y * (width + 1)]
        line = bytearray(raw[y * (width + 1) + 1:(y + 1) * (width + 1)])
        for x in range(width):
            left = line[x - 1] if x else 0
            up, up_left = previous[x], (previous[x - 1] if x else 0)
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + up) & 255
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
                line[x] = (line[x] + predictor) & 255
        rows.append(line)
        previous = line
    return width, height, rows


def write_gray_png(path, width, height, rows):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    raw = b"".join(b"\x00" + bytes(row) for row in rows)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def main():
    source, target = sys.argv[1], sys.argv[2]
    os.makedirs(target, exist_ok=True)
    for name in ("brick", "grass", "gravel"):
        width, height, rows = read_gray_png(os.path.join(source, f"{name}.png"))
        w, h = width // FACTOR, height // FACTOR
        small = [[round(sum(rows[y * FACTOR + dy][x * FACTOR + dx] for dy in range(FACTOR) for dx in range(FACTOR)) / FACTOR**2)
                  for x in range(w)] for y in range(h)]
        write_gray_png(os.path.join(target, f"{name}.png"), w, h, small)
        print(f"{name}: {width}x{height} -> {w}x{h}")


if __name__ == "__main__":
    main()
