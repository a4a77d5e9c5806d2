#!/usr/bin/env python3
"""Fetch small real images for latentgan's demos, notebooks and tests.

Downloads the scikit-image wheel from PyPI (pip download, nothing installed) and extracts:
  * skimage/data/lfw_subset.npy: 200 grayscale 25x25 crops from Labeled Faces in the Wild;
    the first 100 are faces. They are written as RGB PNGs datasets/lfw-faces/000.png ... 099.png
    at their native size (the loaders resize).
  * skimage/data/astronaut.png (512x512 RGB, NASA, public domain) as datasets/astronaut.png.

Standard library only (plus pip). Idempotent: does nothing when the outputs are complete.
Usage: python3 datasets/fetch_faces.py [--out DIR]
"""
import argparse
import ast
import hashlib
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

WHEEL = "scikit_image-0.24.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
WHEEL_SHA256 = "fa27b3a0dbad807b966b8db2d78da734cb812ca4787f7fbb143764800ce2fa9c"
N_FACES = 100


def png_rgb(width, height, rows):
    """Encodes RGB rows (bytes of 3*width each) as a PNG file."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    raw = b"".join(b"\x00" + row for row in rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def read_npy_f8(data):
    """Parses a little-endian float64 C-order .npy file: returns (shape, values)."""
    if data[:6] != b"\x93NUMPY":
        sys.exit("lfw_subset.npy: not a .npy file")
    major = data[6]
    if major == 1:
        (hlen,), start = struct.unpack("<H", data[8:10]), 10
    else:
        (hlen,), start = struct.unpack("<I", data[8:12]), 12
    header = ast.literal_eval(data[start:start + hlen].decode("latin1"))
    if header["descr"] != "<f8" or header["fortran_order"]:
        sys.exit(f"lfw_subset.npy: unexpected layout {header}")
    shape = header["shape"]
    count = 1
    for s in shape:
        count *= s
    body = data[start + hlen:]
    return shape, struct.unpack(f"<{count}d", body[:8 * count])


def fetch_wheel(cache, name=WHEEL, sha256=WHEEL_SHA256, requirement="scikit-image==0.24.0"):
    """The wheel `name` of `requirement` in `cache`, downloaded by pip if missing, sha256-checked."""
    wheel = cache / name
    if not wheel.exists() or hashlib.sha256(wheel.read_bytes()).hexdigest() != sha256:
        cache.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--python-version", "3.11", "--implementation", "cp",
               "--platform", "manylinux_2_17_x86_64", "-d", str(cache), requirement]
        print("fetching", name, flush=True)
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != sha256:
        sys.exit(f"{wheel}: sha256 {digest}, expected {sha256}")
    return wheel


def main():
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=here, help="directory to write into (default: datasets/)")
    args = parser.parse_args()
    faces, astronaut = args.out / "lfw-faces", args.out / "astronaut.png"
    if astronaut.exists() and len(list(faces.glob("*.png"))) == N_FACES:
        print(f"{faces} and {astronaut} are already there")
        return
    with zipfile.ZipFile(fetch_wheel(here / ".cache")) as wheel:
        npy = wheel.read("skimage/data/lfw_subset.npy")
        astronaut_png = wheel.read("skimage/data/astronaut.png")
    (n, h, w), values = read_npy_f8(npy)
    faces.mkdir(parents=True, exist_ok=True)
    for i in range(N_FACES):
        rows = []
        for y in range(h):
            base = (i * h + y) * w
            gray = bytes(min(255, max(0, round(v * 255))) for v in values[base:base + w])
            rows.append(bytes(c for g in gray for c in (g, g, g)))
        (faces / f"{i:03d}.png").write_bytes(png_rgb(w, h, rows))
    astronaut.write_bytes(astronaut_png)
    print(f"wrote {N_FACES} faces ({w}x{h}) to {faces} and {astronaut}")


if __name__ == "__main__":
    main()
