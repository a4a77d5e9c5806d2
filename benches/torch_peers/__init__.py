"""The loops of `benches/peers_torch.py`, one module each, and what they share."""
from contextlib import contextmanager

import torch
from torch import nn


def macs(module, *inputs):
    """Multiply-accumulates of one forward pass of `module` on `inputs`, counted on its
    convolutions and dense layers (through forward hooks, so weights wrapped by spectral norm
    count too). Matrix products written out in a forward (attention) are not seen: a module
    that has them adds them itself."""
    total = [0]

    def conv(m, inp, out):
        k = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
        total[0] += out.numel() * k

    def dense(m, inp, out):
        total[0] += out.numel() * m.weight.shape[1]

    hooks = []
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(dense))
    with torch.no_grad():
        module(*inputs)
    for h in hooks:
        h.remove()
    return total[0]


@contextmanager
def frozen(module):
    """`module`'s weights record no gradients inside the block (a generator's step through the
    discriminator), as the Rust loops' `no_grad()` copy of D; they record them again after."""
    for q in module.parameters():
        q.requires_grad_(False)
    try:
        yield
    finally:
        for q in module.parameters():
            q.requires_grad_(True)
