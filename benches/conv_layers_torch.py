"""The PyTorch peer of `cargo bench --bench conv_layers`: each convolution of the Table-2 pixel
GAN at one resolution (batch 8, same shapes as src/models/gan.rs), or with --net stage1 of stage
1's encoder, decoder and image discriminator (batch 16), timed forward, input
gradient and weight gradient (torch.ops.aten.convolution_backward, one output at a time),
median of 5 after a warm-up, at the given thread count.

    python3 benches/conv_layers_torch.py --res 64 --threads 2

Prints one line per layer: `<name> <forward ms> <input-gradient ms> <weight-gradient ms>`.
"""
import argparse
import time

import torch
import torch.nn.functional as F


def width(r):
    return max(64, min(256, 256 * 32 // r))


STAGE1 = [  # the default AutoEncoderConfig and ImageDiscriminatorConfig, sides as fractions
    ("Fstem", 3, 32, 1, 3, 1), ("Fdown1", 32, 64, 1, 4, 2), ("Fdown2", 64, 128, 2, 4, 2),
    ("Fmid", 128, 128, 4, 3, 1), ("Fout", 128, 16, 4, 3, 1), ("Hstem", 16, 128, 4, 3, 1),
    ("Hmid", 128, 128, 4, 3, 1), ("Hup1", 128, 64, 2, 3, 1), ("Hup2", 64, 32, 1, 3, 1),
    ("Hout", 32, 3, 1, 3, 1), ("D1", 3, 32, 1, 4, 2), ("D2", 32, 64, 2, 4, 2),
    ("D3", 64, 128, 4, 4, 2), ("Dout", 128, 1, 8, 3, 1),
]


def layers(res, net="pixel"):
    """(name, c_in, c_out, side, kernel, stride, padding), as the Rust bench lists them."""
    if net == "stage1":
        return [(n, i, o, res // f, k, s, 1) for n, i, o, f, k, s in STAGE1]
    sides = [8 << i for i in range(res.bit_length()) if 8 << i <= res]
    out = [(f"G{r}", width(r // 2), width(r), r, 3, 1, 1) for r in sides]
    out.append(("Gout", width(res), 3, res, 3, 1, 1))
    out.append(("Dstem", 3, width(res), res, 3, 1, 1))
    out += [(f"D{r}", width(r), width(r // 2), r, 4, 2, 1) for r in reversed(sides)]
    return out


def median_ms(f, reps=5):
    f()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return sorted(times)[reps // 2] * 1e3


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--net", default="pixel", choices=["pixel", "stage1"])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for name, ci, co, side, k, s, pad in layers(a.res, a.net):
        x = torch.randn(a.batch, ci, side, side)
        w = torch.randn(co, ci, k, k)
        dy = torch.randn_like(F.conv2d(x, w, None, s, pad))

        def backward(mask):
            torch.ops.aten.convolution_backward(
                dy, x, w, None, [s, s], [pad, pad], [1, 1], False, [0, 0], 1, mask)

        forward = median_ms(lambda: F.conv2d(x, w, None, s, pad))
        data = median_ms(lambda: backward([True, False, False]))
        weight = median_ms(lambda: backward([False, True, False]))
        print(f"{name} {forward:.3f} {data:.3f} {weight:.3f}", flush=True)


if __name__ == "__main__":
    main()
