"""The code GAN's WGAN-GP step (latentgan's `train_stage2` with the default `Stage2Config`) in
PyTorch: `python3 benches/peers_torch.py --loop code_gan --res 64`.

The acceleration framework's stage 2: the pixel baseline's networks (src/models/gan.rs, see
`pixel.py`) made for the codes of `--res`² images, 16 channels at a quarter of the side (16×16×16
at 64²; Table 2's widths by feature-map side, so 256 channels throughout at 16²), on codes in
[-1, 1] as the encoder's tanh gives them. Same step, optimiser and penalty as `pixel.py`.
"""
import torch

from torch_peers.pixel import Critic, Generator, WganGp

CODE_CHANNELS = 16


def make(a):
    side = a.res // 4
    codes = torch.rand(64, CODE_CHANNELS, side, side) * 2 - 1
    return WganGp(
        Generator(side, CODE_CHANNELS),
        Critic(side, CODE_CHANNELS),
        codes,
        a.batch,
        a.n_critic,
    )
