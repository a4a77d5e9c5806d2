"""SAGAN's class-conditional training step (latentgan's `train_sagan` with the default
`SaganTrainConfig`, as `cargo bench --bench sagan` runs it) in PyTorch:
`python3 benches/peers_torch.py --loop sagan --res 32 --ch 32 --batch 16`.

Mirrors src/models/sagan.rs, src/nn/attention.rs, src/nn/cond_batch_norm.rs,
src/nn/spectral_norm.rs and src/train/sagan.rs. Widths: G's feature maps of side s have
ch·clamp(res/s, 1, 16) channels, D's ch·clamp(res/(2s), 1, 16). G = SN dense 128 → 4×4 → up-blocks
to res (CBN → ReLU → nearest 2× → SN 3×3 → CBN → ReLU → SN 3×3, plus SN 1×1 of the upsampled input)
→ BN → ReLU → SN 3×3 → tanh. D = an optimised first block (SN 3×3 → ReLU → SN 3×3 → avg-pool, plus
SN 1×1 of the pooled input), down-blocks (ReLU → SN 3×3 → ReLU → SN 3×3 → avg-pool, plus the pooled
SN 1×1) to 4×4, one more block at 4×4 with the identity shortcut, ReLU, sum over space, and the
projection head ψ(h) + ⟨h, SN-embed(y)⟩. One self-attention block (SN 1×1 query and key to C/8,
value to C/2, output back to C, no biases, keys and values 2×2 max-pooled, γ from 0) after the
maps of side min(res/2, 32) in both G and D. Every weight is spectrally normalised with one power
iteration per forward pass, G's and D's alike, in both halves of the step. Hinge loss, Adam
(1e-4 for G, 4e-4 for D, β = (0, 0.9)), one D step per G step, then the EMA of G.

Parameter counts from the Rust definitions, by hand (10 classes, latent 128, 3 image channels;
a k×k conv a → b with bias has a·b·k² + b, CBN 2·classes·C, attention on C channels
C²/8 + C²/8 + C²/2 + C²/2 + 1):

  res 32, ch 32 — G widths 256, 128, 64, 32 at 4², 8², 16², 32²; attention at 16² (64 channels)
    G: dense 128·4096 + 4096 = 528,384; up-block 256→128: CBN 5,120 + conv 295,040 + CBN 2,560
       + conv 147,584 + 1×1 32,896 = 483,200; 128→64: 2,560 + 73,792 + 1,280 + 36,928 + 8,256
       = 122,816; attention(64) 5,121; 64→32: 1,280 + 18,464 + 640 + 9,248 + 2,080 = 31,712;
       BN 64; out conv 867.                                       G = 1,172,164
    D widths 32, 64, 128, 128 at 16², 8², 4², 4²; attention at 16² (32 channels):
       3→32: 896 + 9,248 + 128 = 10,272; attention(32) 1,281; 32→64: 18,496 + 36,928 + 2,112
       = 57,536; 64→128: 73,856 + 147,584 + 8,320 = 229,760; 128→128 (no 1×1): 295,168;
       head 129; embedding 10·128 = 1,280.                       D = 595,426
  res 64, ch 64 — G widths 1024, 512, 256, 128, 64; attention at 32² (128 channels)
    G: dense 2,113,536; 1024→512: 7,634,432; 512→256: 1,916,672; 256→128: 483,200;
       attention(128) 20,481; 128→64: 122,816; BN 128; out conv 1,731.   G = 12,292,996
    D widths 64, 128, 256, 512, 512; attention at 32² (64 channels): 3→64: 38,976;
       attention(64) 5,121; 64→128: 229,760; 128→256: 918,272; 256→512: 3,671,552;
       512→512: 4,719,616; head 513; embedding 5,120.                    D = 9,588,930

These are torch's `parameters()` (what peers_torch.py prints) and they match. Burn's
`Module::num_params` also counts every `RunningState` (its visitor sees them as float tensors):
the spectral-norm vectors u (one per SN weight, of the length of its first Burn dimension: a
conv's outputs, a dense layer's *inputs* since Burn stores it [in, out], the embedding's classes)
and the batch norms' running mean and variance. Those are buffers here:
  res 32: G u 915 + running 1,408 → Burn 1,174,487;  D u 1,122 → Burn 596,548
  res 64: G u 3,235 + running 5,888 → Burn 12,302,119;  D u 4,538 → Burn 9,593,468
(`burn_count(module)` below gives them; torch's BatchNorm2d `num_batches_tracked` is left out).
"""
import copy

import torch
from torch import nn
import torch.nn.functional as F

from torch_peers import frozen, macs

LATENT = 128
EMA_DECAY, EMA_START = 0.9999, 2000


def unit(x):
    return x / (x.pow(2).sum().sqrt() + 1e-12)


def spectral_normalize(w, matrix, u, training):
    """`w / σ`, σ estimated on `matrix` (w seen as Burn sees it) with the persistent `u`, as
    src/nn/spectral_norm.rs: v = unit(Mᵀu); when training u ← unit(Mv), v = unit(Mᵀu);
    σ = uᵀ M v, differentiable in M only."""
    with torch.no_grad():
        fixed = matrix.detach()
        v = unit(fixed.t() @ u)
        if training:
            u.copy_(unit(fixed @ v))
            v = unit(fixed.t() @ u)
    sigma = (u * (matrix @ v)).sum()
    return w / sigma


class SNConv2d(nn.Conv2d):
    """A k×k stride-1 convolution padded (k−1)/2 whose weight is W/σ(W); u has one entry per
    output channel."""

    def __init__(self, a, b, k, bias=True):
        super().__init__(a, b, k, 1, (k - 1) // 2, bias=bias)
        self.register_buffer("u", unit(torch.randn(b)))

    def forward(self, x):
        w = spectral_normalize(self.weight, self.weight.view(self.out_channels, -1), self.u, self.training)
        return self._conv_forward(x, w, self.bias)


class SNLinear(nn.Linear):
    """A dense layer whose weight is W/σ(W); Burn stores W as [in, out], so u has one entry per
    input (σ is the same either way)."""

    def __init__(self, a, b):
        super().__init__(a, b)
        self.register_buffer("u", unit(torch.randn(a)))

    def forward(self, x):
        w = spectral_normalize(self.weight, self.weight.t(), self.u, self.training)
        return F.linear(x, w, self.bias)


class SNEmbedding(nn.Module):
    """The projection's class table [classes, C], normalised once per call."""

    def __init__(self, classes, features):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(classes, features).uniform_(-1, 1) / classes ** 0.5)
        self.register_buffer("u", unit(torch.randn(classes)))

    def forward(self, y):
        return spectral_normalize(self.weight, self.weight, self.u, self.training)[y]


class CondBatchNorm(nn.Module):
    """Batch norm without its own affine, then γ_y and β_y of each row's class (γ from 1, β from 0).
    Training normalises with the batch's (biased) variance, as the Rust layer."""

    def __init__(self, c, classes):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(classes, c))
        self.beta = nn.Parameter(torch.zeros(classes, c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def forward(self, x, y):
        h = F.batch_norm(x, self.running_mean, self.running_var, None, None, self.training, 0.1, 1e-5)
        return h * self.gamma[y][:, :, None, None] + self.beta[y][:, :, None, None]


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.query = SNConv2d(c, c // 8, 1, bias=False)
        self.key = SNConv2d(c, c // 8, 1, bias=False)
        self.value = SNConv2d(c, c // 2, 1, bias=False)
        self.out = SNConv2d(c // 2, c, 1, bias=False)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.seen = None  # (batch, channels, positions, key positions) of the last call

    def forward(self, x):
        b, c, h, w = x.shape
        n = h * w
        q = self.query(x).view(b, c // 8, n).transpose(1, 2)  # [b, n, c/8]
        k = F.max_pool2d(self.key(x), 2).view(b, c // 8, -1)  # [b, c/8, n/4]
        v = F.max_pool2d(self.value(x), 2).view(b, c // 2, -1)  # [b, c/2, n/4]
        attention = torch.softmax(torch.bmm(q, k), dim=2)  # [b, n, n/4]
        o = torch.bmm(v, attention.transpose(1, 2)).view(b, c // 2, h, w)
        self.seen = (b, c, n, k.shape[2])
        return self.gamma * self.out(o) + x

    def matmul_macs(self):
        """MACs of the two batched products of the last call: q·k and v·attentionᵀ."""
        b, c, n, m = self.seen
        return b * n * m * (c // 8 + c // 2)


def attention_side(res):
    return min(res // 2, 32) if res >= 16 else None


class UpBlock(nn.Module):
    def __init__(self, a, b, classes, attend):
        super().__init__()
        self.norm1 = CondBatchNorm(a, classes)
        self.conv1 = SNConv2d(a, b, 3)
        self.norm2 = CondBatchNorm(b, classes)
        self.conv2 = SNConv2d(b, b, 3)
        self.shortcut = SNConv2d(a, b, 1)
        self.attention = SelfAttention(b) if attend else None

    def forward(self, x, y):
        h = self.conv1(F.interpolate(F.relu(self.norm1(x, y)), scale_factor=2, mode="nearest"))
        h = self.conv2(F.relu(self.norm2(h, y)))
        out = h + self.shortcut(F.interpolate(x, scale_factor=2, mode="nearest"))
        return self.attention(out) if self.attention is not None else out


class Generator(nn.Module):
    def __init__(self, res, ch, classes, channels=3, latent=LATENT):
        super().__init__()
        width = lambda s: ch * max(1, min(16, res // s))
        self.w4 = width(4)
        self.dense = SNLinear(latent, 16 * self.w4)
        sides = [2 ** k for k in range(3, res.bit_length())]
        self.blocks = nn.ModuleList(
            UpBlock(width(s // 2), width(s), classes, s == attention_side(res)) for s in sides
        )
        self.norm = nn.BatchNorm2d(width(res))
        self.out = SNConv2d(width(res), channels, 3)

    def forward(self, z, y):
        x = self.dense(z).view(-1, self.w4, 4, 4)
        for block in self.blocks:
            x = block(x, y)
        return torch.tanh(self.out(F.relu(self.norm(x))))


class DownBlock(nn.Module):
    def __init__(self, a, b, first, down, attend):
        super().__init__()
        self.first, self.down = first, down
        self.conv1 = SNConv2d(a, b, 3)
        self.conv2 = SNConv2d(b, b, 3)
        self.shortcut = SNConv2d(a, b, 1) if (a != b or down) else None
        self.attention = SelfAttention(b) if attend else None

    def forward(self, x):
        h = self.conv2(F.relu(self.conv1(x if self.first else F.relu(x))))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.shortcut is None:
            s = x
        elif self.first:
            s = self.shortcut(F.avg_pool2d(x, 2))
        elif self.down:
            s = F.avg_pool2d(self.shortcut(x), 2)
        else:
            s = self.shortcut(x)
        out = h + s
        return self.attention(out) if self.attention is not None else out


class Discriminator(nn.Module):
    def __init__(self, res, ch, classes, channels=3):
        super().__init__()
        width = lambda s: ch * max(1, min(16, res // (2 * s)))
        sides = [res >> k for k in range(1, res.bit_length()) if res >> k >= 4] + [4]
        blocks, a = [], channels
        for i, s in enumerate(sides):
            down = i + 1 < len(sides)
            blocks.append(DownBlock(a, width(s), i == 0, down, down and s == attention_side(res)))
            a = width(s)
        self.blocks = nn.ModuleList(blocks)
        self.head = SNLinear(a, 1)
        self.embedding = SNEmbedding(classes, a) if classes > 1 else None

    def forward(self, x, y):
        for block in self.blocks:
            x = block(x)
        h = F.relu(x).sum(dim=(2, 3))
        out = self.head(h)
        if self.embedding is not None:
            out = out + (h * self.embedding(y)).sum(dim=1, keepdim=True)
        return out


def burn_count(module):
    """What Burn's `num_params` reports: parameters plus float buffers (u, running statistics)."""
    return sum(p.numel() for p in module.parameters()) + sum(
        b.numel() for b in module.buffers() if b.is_floating_point()
    )


class Sagan:
    """One D step (hinge, real batch with its labels against G's samples of uniform classes,
    both in one D pass), then one G step (fresh noise and classes, through D with its weights
    frozen), then the EMA of G (a copy until EMA_START steps, as `ema_start` 2000)."""

    def __init__(self, g, d, data, batch, classes):
        self.g, self.d, self.data = g, d, data
        self.batch, self.classes = batch, classes
        self.models = {"G": g, "D": d}
        self.images_per_step = batch
        self.opt_g = torch.optim.Adam(g.parameters(), lr=1e-4, betas=(0.0, 0.9), eps=1e-8)
        self.opt_d = torch.optim.Adam(d.parameters(), lr=4e-4, betas=(0.0, 0.9), eps=1e-8)
        self.ema = copy.deepcopy(g)
        self.steps = 0

    def labels(self, n):
        return torch.randint(0, self.classes, (n,))

    def step(self):
        g, d, n = self.g, self.d, self.batch
        x = self.data[torch.randint(0, len(self.data), (n,))]
        y = self.labels(n)
        # D: G in training mode (batch statistics, a power iteration), no graph.
        y_fake = self.labels(n)
        with torch.no_grad():
            fake = g(torch.randn(n, LATENT), y_fake)
        scores = d(torch.cat([x, fake]), torch.cat([y, y_fake]))
        loss_d = F.relu(1 - scores[:n]).mean() + F.relu(1 + scores[n:]).mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        # G: through D, whose weights record no gradients (its u still refines, as in Rust).
        with frozen(d):
            y_g = self.labels(n)
            loss_g = -d(g(torch.randn(n, LATENT), y_g), y_g).mean()
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            self.opt_g.step()
        # The EMA over every float tensor of G (Burn's visitor sees u and the running statistics
        # too): a copy before EMA_START, then ema ← decay·ema + (1 − decay)·G.
        with torch.no_grad():
            decay = 0.0 if self.steps < EMA_START else EMA_DECAY
            pairs = list(zip(self.ema.parameters(), g.parameters())) + [
                (e, s) for e, s in zip(self.ema.buffers(), g.buffers()) if s.is_floating_point()
            ]
            for e, s in pairs:
                if decay == 0.0:
                    e.copy_(s)
                else:
                    e.lerp_(s, 1 - decay)
        self.steps += 1

    def flops_per_step(self):
        """2 × MACs per forward (convolutions and dense layers through `macs`, plus each attention
        block's q·k and v·attentionᵀ products), per step of batch n:
        D step: G without graph (×1) on n, D differentiated (×3) on 2n (real and fake together);
        G step: G and D differentiated (×3) on n. So 2·n·(g + 3·2·d + 3·g + 3·d) = 2·n·(4g + 9d)
        with g, d the MACs per image. Spectral norm's power iterations, batch norms, the
        embedding and the pooling are left out."""
        k = 2
        z, y = torch.randn(k, LATENT), self.labels(k)
        g = (macs(self.g, z, y) + attention_macs(self.g)) / k
        x = self.data[:k]
        d = (macs(self.d, x, y) + attention_macs(self.d)) / k
        return 2.0 * self.batch * (4 * g + 9 * d)


def attention_macs(model):
    return sum(m.matmul_macs() for m in model.modules() if isinstance(m, SelfAttention))


def make(a):
    data = torch.rand(64, 3, a.res, a.res) * 2 - 1
    g = Generator(a.res, a.ch, a.classes)
    d = Discriminator(a.res, a.ch, a.classes)
    return Sagan(g, d, data, a.batch, a.classes)
