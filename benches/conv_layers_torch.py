"""The PyTorch peer of `cargo bench --bench conv_layers`: each convolution of the Table-2 pixel
GAN at one resolution (batch 8, same shapes as src/models/gan.rs), timed forward, input
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


def layers(res):
    """(name, c_in, c_out, side, kernel, stride, padding), as the Rust bench lists them."""
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
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    for name, ci, co, side, k, s, pad in layers(a.res):
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
