"""The pixel baseline's WGAN-GP step (latentgan's `train_baseline` with the default
`Stage2Config`) in PyTorch: `python3 benches/peers_torch.py --loop pixel --res 64`.

The networks follow src/models/gan.rs: widths clamp(256·32/r, 64, 256), G = dense → 4×4 →
(nearest 2× upsample, 3×3 conv, leaky ReLU 0.2, pixel norm)* → 3×3 conv → tanh; D = 3×3 conv →
(4×4 stride-2 conv, leaky ReLU)* to 4×4 → dense 256 → 1. The penalty differentiates through
autograd.grad with create_graph=True, as the WGAN-GP reference does. `code_gan` reuses them with
16 channels at the code's side.
"""
import torch
from torch import nn
import torch.nn.functional as F

from torch_peers import frozen, macs


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


class WganGp:
    """One generator step after `n_critic` critic steps on `data` (N × C × S × S in [-1, 1]),
    Adam(1e-4, 0, 0.9) on both, penalty weight 10."""

    def __init__(self, g, d, data, batch, n_critic, latent=128):
        self.g, self.d, self.data = g, d, data
        self.batch, self.n_critic, self.latent = batch, n_critic, latent
        self.models = {"G": g, "D": d}
        self.images_per_step = batch * n_critic
        self.opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9))
        self.opt_d = torch.optim.Adam(d.parameters(), lr=1e-4, betas=(0.0, 0.9))

    def step(self):
        g, d, n = self.g, self.d, self.batch
        for _ in range(self.n_critic):
            x = self.data[torch.randint(0, len(self.data), (n,))]
            with torch.no_grad():
                fake = g(torch.randn(n, self.latent))
            eps = torch.rand(n, 1, 1, 1)
            x_hat = (eps * x + (1 - eps) * fake).requires_grad_(True)
            grad, = torch.autograd.grad(d(x_hat).sum(), x_hat, create_graph=True)
            gp = 10.0 * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
            loss = d(fake).mean() - d(x).mean() + gp
            self.opt_d.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_d.step()
        with frozen(d):
            loss_g = -d(g(torch.randn(n, self.latent))).mean()
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g.step()

    def flops_per_step(self):
        """Per critic step: G forward without graph, D on real and fake and the interpolate
        (differentiated), and the penalty's input gradient (a second D pass, differentiated);
        per generator step, G and D differentiated."""
        z = torch.randn(1, self.latent)
        g = macs(self.g, z)
        d = macs(self.d, self.data[:1])
        per_critic = self.batch * (g + 3 * 4 * d)
        per_generator = self.batch * 3 * (g + d)
        return 2.0 * (self.n_critic * per_critic + per_generator)


def make(a):
    data = torch.rand(64, 3, a.res, a.res) * 2 - 1
    return WganGp(Generator(a.res), Critic(a.res), data, a.batch, a.n_critic)
