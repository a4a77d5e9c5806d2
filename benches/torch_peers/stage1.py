"""Stage 1 of the acceleration framework (latentgan's `train_stage1` with the default
`Stage1Config`) in PyTorch: `python3 benches/peers_torch.py --loop stage1 --res 64`.

Mirrors src/models/autoencoder.rs (`AutoEncoderConfig`, `ImageDiscriminatorConfig`),
src/nn/mod.rs (`conv`, `upsample2x`, `LEAK`), src/train/losses.rs and src/train/stage1.rs. Code
factor 4, 16 code channels, widths min(32·2^i, 128) at downsampling level i; every conv has a
bias, padding 1 on every side, and no normalisation anywhere. F = 3×3 conv 3→32 → (4×4 stride-2
conv)×2 to 64, 128 → 3×3 conv 128→128 → 3×3 conv 128→16 → tanh, leaky ReLU 0.2 after every conv
but the last; H = 3×3 conv 16→128 → 3×3 conv 128→128 → (nearest 2× upsample, 3×3 conv)×2 to 64,
32 → 3×3 conv 32→3 → tanh, leaky ReLU 0.2 after every conv but the last; D = (4×4 stride-2 conv,
leaky ReLU)×3 with widths min(32·2^i, 256) = 32, 64, 128 → 3×3 conv 128→1 → the patch logits
averaged to one logit per image. Adam(2e-4, 0.5, 0.999, ε 1e-8) on F+H together and on D, α 0.01.

Parameters, counted by hand from the Rust definitions (weights + biases; no norm layers; they do
not depend on the resolution):
  encoder        stem 3·32·9+32 = 896, down 32·64·16+64 = 32832 and 64·128·16+128 = 131200,
                 mid 128·128·9+128 = 147584, out 128·16·9+16 = 18448           → 330960
  decoder        stem 16·128·9+128 = 18560, mid 147584, up 128·64·9+64 = 73792 and
                 64·32·9+32 = 18464, out 32·3·9+3 = 867                         → 259267
  discriminator  convs 3·32·16+32 = 1568, 32·64·16+64 = 32832, 64·128·16+128 = 131200,
                 out 128·1·9+1 = 1153                                           → 166753
"""
import torch
from torch import nn
import torch.nn.functional as F

from torch_peers import frozen, macs

LEAK = 0.2


def conv(cin, cout, k, stride):
    """src/nn/mod.rs `conv`: padding ceil((k − stride)/2) on every side (1 for 3×3 stride 1 and
    for 4×4 stride 2), with bias."""
    return nn.Conv2d(cin, cout, k, stride, (k - stride + 1) // 2)


class Encoder(nn.Module):
    """F: images [B, 3, H, W] → codes [B, 16, H/4, W/4] in [-1, 1]."""

    def __init__(self, code_factor=4, code_channels=16, width=32, max_width=128):
        super().__init__()
        k = code_factor.bit_length() - 1
        ch = [min(width << i, max_width) for i in range(k + 1)]
        self.stem = conv(3, ch[0], 3, 1)
        self.down = nn.ModuleList(conv(ch[i], ch[i + 1], 4, 2) for i in range(k))
        self.mid = conv(ch[k], ch[k], 3, 1)
        self.out = conv(ch[k], code_channels, 3, 1)

    def forward(self, x):
        h = F.leaky_relu(self.stem(x), LEAK)
        for d in self.down:
            h = F.leaky_relu(d(h), LEAK)
        h = F.leaky_relu(self.mid(h), LEAK)
        return torch.tanh(self.out(h))


class Decoder(nn.Module):
    """H: codes [B, 16, h, w] → images [B, 3, 4h, 4w] in [-1, 1]."""

    def __init__(self, code_factor=4, code_channels=16, width=32, max_width=128):
        super().__init__()
        k = code_factor.bit_length() - 1
        ch = [min(width << i, max_width) for i in range(k + 1)]
        self.stem = conv(code_channels, ch[k], 3, 1)
        self.mid = conv(ch[k], ch[k], 3, 1)
        self.up = nn.ModuleList(conv(ch[i + 1], ch[i], 3, 1) for i in reversed(range(k)))
        self.out = conv(ch[0], 3, 3, 1)

    def forward(self, c):
        h = F.leaky_relu(self.stem(c), LEAK)
        h = F.leaky_relu(self.mid(h), LEAK)
        for u in self.up:
            h = F.leaky_relu(u(F.interpolate(h, scale_factor=2, mode="nearest")), LEAK)
        return torch.tanh(self.out(h))


class ImageDiscriminator(nn.Module):
    """D: images → one logit per image, [B, 1] (the mean of a map of patch logits)."""

    def __init__(self, width=32, layers=3):
        super().__init__()
        ch = [min(width << i, 256) for i in range(layers)]
        self.convs = nn.ModuleList(conv(3 if i == 0 else ch[i - 1], ch[i], 4, 2) for i in range(layers))
        self.out = conv(ch[-1], 1, 3, 1)

    def forward(self, x):
        h = x
        for c in self.convs:
            h = F.leaky_relu(c(h), LEAK)
        return self.out(h).flatten(1).mean(dim=1, keepdim=True)


class Stage1:
    """One stage-1 step on a batch of `batch` images from `data` (N × 3 × S × S in [-1, 1]): the
    reconstruction H(F(x)) is made once, with its graph; D steps on softplus(−D(x)) +
    softplus(D(rec.detach())); then F and H step on L1(rec, x) + α·softplus(−D(rec)) through the
    updated D (all means over the batch)."""

    def __init__(self, f, h, d, data, batch, alpha=0.01, lr=2e-4):
        self.f, self.h, self.d, self.data = f, h, d, data
        self.batch, self.alpha = batch, alpha
        self.models = {"encoder": f, "decoder": h, "discriminator": d}
        self.images_per_step = batch
        ae = list(f.parameters()) + list(h.parameters())
        self.opt_ae = torch.optim.Adam(ae, lr=lr, betas=(0.5, 0.999), eps=1e-8)
        self.opt_d = torch.optim.Adam(d.parameters(), lr=lr, betas=(0.5, 0.999), eps=1e-8)

    def step(self):
        f, h, d = self.f, self.h, self.d
        x = self.data[torch.randint(0, len(self.data), (self.batch,))]
        rec = h(f(x))
        # D: real images vs the current reconstructions, detached (eq. 4).
        loss_d = F.softplus(-d(x)).mean() + F.softplus(d(rec.detach())).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        # F and H: L1 + α · non-saturating adversarial loss through the updated D (eqs. 1–3).
        with frozen(d):
            loss_ae = (rec - x).abs().mean() + self.alpha * F.softplus(-d(rec)).mean()
            self.opt_ae.zero_grad(set_to_none=True)
            loss_ae.backward()
            self.opt_ae.step()

    def flops_per_step(self):
        """Every forward of a step is differentiated: F and H once, D three times (on x and on
        the detached reconstruction for D's loss, on the reconstruction for F and H's), so
        2 · 3 · batch · (MACs(F) + MACs(H) + 3 · MACs(D)), MACs per image."""
        x = self.data[:1]
        enc = macs(self.f, x)
        dec = macs(self.h, self.f(x).detach())
        dis = macs(self.d, x)
        return 2.0 * 3 * self.batch * (enc + dec + 3 * dis)


def make(a):
    data = torch.rand(64, 3, a.res, a.res) * 2 - 1
    return Stage1(Encoder(), Decoder(), ImageDiscriminator(), data, a.batch)
