#!/usr/bin/env python3
"""Time pytorch-fid (the reference FID implementation) on this machine, for latentgan's FID bench.

Needs a Python with torch, torchvision, numpy, scipy and pytorch-fid==0.3.0 (see
tests/fixtures/fid/make_fid_fixtures.py for a working venv recipe) and latentgan's converted
Inception weights (python3 datasets/fetch_inception.py). pytorch-fid never downloads anything:
its InceptionV3 is built with these weights.

Prints exactly two lines on stdout (everything else goes to stderr):
    pytorch_fid_images_per_s <images per second of pool3 feature extraction>
    pytorch_fid_distance_s <seconds of one calculate_frechet_distance at --dim>

Feature extraction runs pytorch-fid's InceptionV3 (resize to 299 bilinear, scale to [-1, 1],
2048-d pool3, eval mode, no grad) on N random uint8 images (size x size, given as float
tensors in [0, 1] like ToTensor makes them) in batches, after one untimed warm-up batch.
The distance is pytorch_fid.fid_score.calculate_frechet_distance (scipy sqrtm) on random
full-rank statistics.

Usage: python benches/pytorch_fid_speed.py [--n 64] [--size 64] [--batch 32] [--threads T]
                                           [--dim 2048] [--weights FILE]
  LATENTGAN_TORCH_PYTHON is the variable latentgan's Rust bench reads to find such a python.
"""
import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

WEIGHTS = Path("inception") / "pt_inception-2015-12-05-fid.safetensors"

# pytorch-fid's InceptionV3 keeps torchvision's layers in four nn.Sequential blocks.
BLOCKS = {
    "Conv2d_1a_3x3": "blocks.0.0", "Conv2d_2a_3x3": "blocks.0.1", "Conv2d_2b_3x3": "blocks.0.2",
    "Conv2d_3b_1x1": "blocks.1.0", "Conv2d_4a_3x3": "blocks.1.1",
    "Mixed_5b": "blocks.2.0", "Mixed_5c": "blocks.2.1", "Mixed_5d": "blocks.2.2",
    "Mixed_6a": "blocks.2.3", "Mixed_6b": "blocks.2.4", "Mixed_6c": "blocks.2.5",
    "Mixed_6d": "blocks.2.6", "Mixed_6e": "blocks.2.7",
    "Mixed_7a": "blocks.3.0", "Mixed_7b": "blocks.3.1", "Mixed_7c": "blocks.3.2",
}


def default_weights():
    """Same cache rule as latentgan (src/data/cache.rs) and datasets/fetch_inception.py."""
    if "LATENTGAN_CACHE" in os.environ:
        cache = Path(os.environ["LATENTGAN_CACHE"])
    elif "XDG_CACHE_HOME" in os.environ:
        cache = Path(os.environ["XDG_CACHE_HOME"]) / "latentgan"
    elif "HOME" in os.environ:
        cache = Path(os.environ["HOME"]) / ".cache" / "latentgan"
    else:
        cache = Path(tempfile.gettempdir()) / "latentgan"
    return cache / WEIGHTS


def load_safetensors(path):
    """Reads an F32 safetensors file into {name: float32 numpy array} (no safetensors package)."""
    import numpy as np
    data = Path(path).read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    body = memoryview(data)[8 + n:]
    out = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {info['dtype']}, expected F32")
        start, end = info["data_offsets"]
        out[name] = np.frombuffer(body[start:end], dtype="<f4").reshape(info["shape"]).copy()
    return out


def build_model(weights):
    """pytorch-fid's InceptionV3 (pool3, 2048-d; resize and normalize as pytorch-fid does) with
    latentgan's converted weights, in eval mode. Fails if any parameter is left unset."""
    import torch
    import pytorch_fid.inception as inception
    ours = load_safetensors(weights)
    torchvision_names = {}
    for name, array in ours.items():
        torchvision_names[name] = torch.from_numpy(array)
        if name.endswith(".bn.bias"):  # the TF batch norms have no gamma: scale 1
            torchvision_names[name[:-len("bias")] + "weight"] = torch.ones_like(torchvision_names[name])
    # fid_inception_v3() would download pt_inception-2015-12-05; hand it our tensors instead
    # (its torchvision Inception3 also has a 1008-way fc that InceptionV3 never uses: zeros).
    full = dict(torchvision_names)
    full["fc.weight"] = torch.zeros(1008, 2048)
    full["fc.bias"] = torch.zeros(1008)
    saved = inception.load_state_dict_from_url
    inception.load_state_dict_from_url = lambda *args, **kwargs: full
    try:
        model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]],
                                      resize_input=True, normalize_input=True, use_fid_inception=True)
    finally:
        inception.load_state_dict_from_url = saved
    # Load again under InceptionV3's own names, strictly: every parameter and running statistic
    # must come from our file (num_batches_tracked is a counter that eval mode never reads).
    state = {}
    for name, tensor in torchvision_names.items():
        top, rest = name.split(".", 1)
        state[f"{BLOCKS[top]}.{rest}"] = tensor
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = value
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


def time_features(model, n, size, batch, seed=0):
    import numpy as np
    import torch
    rng = np.random.default_rng(seed)
    images = torch.from_numpy(rng.integers(0, 256, size=(n, 3, size, size), dtype=np.uint8))
    images = images.float() / 255.0
    with torch.no_grad():
        model(images[:batch])  # warm-up
        start = time.perf_counter()
        for i in range(0, n, batch):
            features = model(images[i:i + batch])[0]
        elapsed = time.perf_counter() - start
    assert features.shape[1:] == (2048, 1, 1)
    return n / elapsed


def time_distance(dim, seed=0):
    import numpy as np
    from pytorch_fid.fid_score import calculate_frechet_distance
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(2):
        m = rng.normal(size=(dim, dim))
        stats.append((rng.normal(size=dim), m @ m.T / dim + 0.01 * np.eye(dim)))
    with contextlib.redirect_stdout(sys.stderr):  # pytorch-fid prints its eps warning on stdout
        start = time.perf_counter()
        value = calculate_frechet_distance(stats[0][0], stats[0][1], stats[1][0], stats[1][1])
        elapsed = time.perf_counter() - start
    print(f"distance {value!r} at d={dim}", file=sys.stderr)
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=64, help="images to extract features of")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    parser.add_argument("--dim", type=int, default=2048, help="feature dimension of the distance")
    parser.add_argument("--weights", type=Path, default=None,
                        help="converted weights (default: the latentgan cache's, as fetch_inception.py writes)")
    args = parser.parse_args()
    weights = args.weights or default_weights()
    if not weights.exists():
        sys.exit(f"{weights} is missing: run python3 datasets/fetch_inception.py first")
    import torch
    import pytorch_fid
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, pytorch-fid {pytorch_fid.__version__}, {args.threads} threads, "
          f"{args.n} images of {args.size}x{args.size}, batch {args.batch}", file=sys.stderr)
    model = build_model(weights)
    print(f"pytorch_fid_images_per_s {time_features(model, args.n, args.size, args.batch):.3f}", flush=True)
    print(f"pytorch_fid_distance_s {time_distance(args.dim):.3f}", flush=True)


if __name__ == "__main__":
    main()
