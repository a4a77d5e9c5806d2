"""The PyTorch peer of `cargo bench --bench stage2`: the pixel baseline's WGAN-GP training step
(latentgan's `train_baseline` with the default `Stage2Config`) written in PyTorch, same shapes,
batch, n_critic and thread count, timed after one warm-up step.

    python3 benches/wgan_gp_torch.py --res 64 --batch 8 --steps 3 --n-critic 5 --threads 2

Prints `pytorch_pixel_gan_images_per_s_<res> <value>` (real images through the critic per
second). With `--serve` it stays up after the warm-up and answers each stdin line (a number of
steps) with the images/s of that many steps, so the bench can alternate Burn and PyTorch runs. Needs only torch (Debian's python3-torch is CPU-only). The networks follow
src/models/gan.rs: widths clamp(256·32/r, 64, 256), G = dense → 4×4 → (nearest 2× upsample,
3×3 conv, leaky ReLU 0.2, pixel norm)* → 3×3 conv → tanh; D = 3×3 conv → (4×4 stride-2 conv,
leaky ReLU)* to 4×4 → dense 256 → 1. The penalty differentiates through autograd.grad with
create_graph=True, as the WGAN-GP reference does.
"""
import argparse
import sys
import time

import torch
from torch import nn
import torch.nn.functional as F


def width(r):
    return max(64, min(256, 256 * 32 // r))


def sides(size):
    r = 8
    while r <= size:
        yield r
        r *= 2


class Generator(nn.Module):
    def __init__(self, size, channels=3, latent=128):
        super().__init__()
        self.w4 = width(4)
        self.dense = nn.Linear(latent, 16 * self.w4)
        self.blocks = nn.ModuleList(nn.Conv2d(width(r // 2), width(r), 3, 1, 1) for r in sides(size))
        self.out = nn.Conv2d(width(size), channels, 3, 1, 1)

    def forward(self, z):
        x = self.dense(z).view(-1, self.w4, 4, 4)
        x = pixel_norm(F.leaky_relu(x, 0.2))
        for conv in self.blocks:
            x = pixel_norm(F.leaky_relu(conv(F.interpolate(x, scale_factor=2, mode="nearest")), 0.2))
        return torch.tanh(self.out(x))


def pixel_norm(x):
    return x / (x.pow(2).mean(dim=1, keepdim=True) + 1e-8).sqrt()


class Critic(nn.Module):
    def __init__(self, size, channels=3):
        super().__init__()
        self.stem = nn.Conv2d(channels, width(size), 3, 1, 1)
        self.down = nn.ModuleList(nn.Conv2d(width(r), width(r // 2), 4, 2, 1) for r in reversed(list(sides(size))))
        self.dense = nn.Linear(16 * width(4), 256)
        self.out = nn.Linear(256, 1)

    def forward(self, x):
        h = F.leaky_relu(self.stem(x), 0.2)
        for conv in self.down:
            h = F.leaky_relu(conv(h), 0.2)
        return self.out(F.leaky_relu(self.dense(h.flatten(1)), 0.2))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--n-critic", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--serve", action="store_true", help="time --steps-sized runs on request, one per stdin line (the bench interleaves them with its own)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    g, d = Generator(a.res), Critic(a.res)
    opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.0, 0.9))
    real = torch.rand(64, 3, a.res, a.res) * 2 - 1

    def step():
        for _ in range(a.n_critic):
            x = real[torch.randint(0, 64, (a.batch,))]
            with torch.no_grad():
                fake = g(torch.randn(a.batch, 128))
            eps = torch.rand(a.batch, 1, 1, 1)
            x_hat = (eps * x + (1 - eps) * fake).requires_grad_(True)
            grad, = torch.autograd.grad(d(x_hat).sum(), x_hat, create_graph=True)
            gp = 10.0 * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            loss = d(fake).mean() - d(x).mean() + gp
            opt_d.zero_grad(set_to_none=True)
            loss.backward()
            opt_d.step()
        for q in d.parameters():
            q.requires_grad_(False)
        loss_g = -d(g(torch.randn(a.batch, 128))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for q in d.parameters():
            q.requires_grad_(True)

    def rate(steps):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        return steps * a.batch * a.n_critic / (time.perf_counter() - start)

    step()  # warm-up
    if a.serve:
        # One line per request: a number of steps in, their images/s out.
        print(f"ready (torch {torch.__version__}, {torch.get_num_threads()} threads)", flush=True)
        for line in sys.stdin:
            print(f"{rate(int(line)):.4f}", flush=True)
        return
    print(f"pytorch_pixel_gan_images_per_s_{a.res} {rate(a.steps):.3f}  (torch {torch.__version__}, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
