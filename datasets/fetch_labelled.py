#!/usr/bin/env python3
"""Fetch small real labelled images (class folders) for latentgan's conditional models.

Writes two datasets in the `root/<class>/<file>` layout (ImageNet's train layout):
  * datasets/lfw-subset/{face,non-face}/000.png ... 099.png: scikit-image's lfw_subset, 100
    25x25 grayscale faces from Labeled Faces in the Wild and 100 non-face patches (2 classes),
    from the scikit-image wheel fetch_faces.py already downloads.
  * datasets/digits/{0..9}/0000.png ...: scikit-learn's 8x8 handwritten digits (1 797 images,
    10 classes; UCI optdigits), from sklearn/datasets/data/digits.csv.gz in the scikit-learn
    wheel (pip download, nothing installed). Pixel values 0..16 are scaled to 0..255.

Standard library only (plus pip). Idempotent: does nothing when the outputs are complete.
Usage: python3 datasets/fetch_labelled.py [--out DIR]
"""
import argparse
import gzip
import sys
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fetch_faces import fetch_wheel, png_rgb, read_npy_f8  # noqa: E402

SKLEARN_WHEEL = "scikit_learn-1.5.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
SKLEARN_SHA256 = "f8b0ccd4a902836493e026c03256e8b206656f91fbcc4fde28c57a5b752561f1"
N_DIGITS = 1797


def gray_png(size, values):
    """A size x size gray image from row-major values in [0, 255], as an RGB PNG."""
    rows = []
    for y in range(size):
        gray = values[y * size:(y + 1) * size]
        rows.append(bytes(c for g in gray for c in (g, g, g)))
    return png_rgb(size, size, rows)


def write_lfw_subset(out, cache):
    if all(len(list((out / c).glob("*.png"))) == 100 for c in ("face", "non-face")):
        print(f"{out} is already there")
        return
    with zipfile.ZipFile(fetch_wheel(cache)) as wheel:
        (n, h, w), values = read_npy_f8(wheel.read("skimage/data/lfw_subset.npy"))
    if (n, h, w) != (200, 25, 25):
        sys.exit(f"lfw_subset.npy: shape {(n, h, w)}, expected (200, 25, 25)")
    for i in range(n):
        folder = out / ("face" if i < 100 else "non-face")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = [min(255, max(0, round(v * 255))) for v in values[i * h * w:(i + 1) * h * w]]
        (folder / f"{i % 100:03d}.png").write_bytes(gray_png(w, pixels))
    print(f"wrote 100 faces and 100 non-faces ({w}x{h}) to {out}")


def write_digits(out, cache):
    if sum(len(list(out.glob(f"{d}/*.png"))) for d in range(10)) == N_DIGITS:
        print(f"{out} is already there")
        return
    wheel = fetch_wheel(cache, SKLEARN_WHEEL, SKLEARN_SHA256, "scikit-learn==1.5.2")
    with zipfile.ZipFile(wheel) as wheel:
        text = gzip.decompress(wheel.read("sklearn/datasets/data/digits.csv.gz")).decode()
    rows = [line.split(",") for line in text.strip().splitlines()]
    if len(rows) != N_DIGITS or any(len(r) != 65 for r in rows):
        sys.exit(f"digits.csv.gz: {len(rows)} rows, expected {N_DIGITS} of 65 values")
    for i, row in enumerate(rows):
        values, label = [int(float(v)) for v in row[:64]], int(float(row[64]))
        folder = out / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:04d}.png").write_bytes(gray_png(8, [v * 255 // 16 for v in values]))
    print(f"wrote {N_DIGITS} digits (8x8, 10 classes) to {out}")


def main():
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=here, help="directory to write into (default: datasets/)")
    args = parser.parse_args()
    write_lfw_subset(args.out / "lfw-subset", here / ".cache")
    write_digits(args.out / "digits", here / ".cache")


if __name__ == "__main__":
    main()
