"""The PyTorch peers of `cargo bench --bench peers`: each training loop latentgan runs, written
in PyTorch from the papers and from latentgan's own layer descriptions (never copied from a
repository), with the same shapes, batch, optimiser and thread count.

    python3 benches/peers_torch.py --loop stage1 --res 64 --batch 8 --threads 2 [--steps 3]
    python3 benches/peers_torch.py --loop code_gan --res 64 --serve

Loops (one module each under benches/torch_peers/):
  pixel     the pixel baseline's WGAN-GP step (Table 2 widths, n_critic 5, exact penalty)
  code_gan  the same WGAN-GP on 16×16×16 codes of --res² images (the acceleration framework's stage 2)
  stage1    encoder F, decoder H and the image discriminator: L1 + adversarial (stage 1)
  sagan     SAGAN's class-conditional ResNet model: conditional batch norm, projection
            discriminator, attention, spectral norm, hinge loss, 1:1 (--ch, --classes)

Every module exposes `make(args) -> Peer`, where a Peer has `models` (a dict of name → nn.Module,
whose sizes, parameters and float buffers, are printed for comparison with latentgan's), `images_per_step` (real
images through the discriminator per step, as latentgan's benches count them), `step()` (one
full training step) and `flops_per_step()` (the nominal work of one step: 2 FLOPs per
multiply-accumulate of each forward pass it runs, three times that for a forward it differentiates,
as counted by `torch_peers.macs`; the bench prints GFLOP/s from it for both sides).

Without --serve, prints `pytorch_<loop>_images_per_s_<res> X` after one warm-up step. With
--serve, prints one `ready …` line after the warm-up, then answers each stdin line (a number of
steps) with the images/s of that many steps, so the bench alternates PyTorch runs with its own;
at end of input it prints `peak_rss_mib X` (this process's peak resident set).
"""
import argparse
import importlib
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def parse():
    p = argparse.ArgumentParser()
    p.add_argument("--loop", required=True, choices=["pixel", "code_gan", "stage1", "sagan"])
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--n-critic", type=int, default=5)
    p.add_argument("--ch", type=int, default=32, help="SAGAN's base width")
    p.add_argument("--classes", type=int, default=10, help="SAGAN's classes")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--serve", action="store_true")
    return p.parse_args()


def peak_rss_mib():
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def state_size(module):
    """Parameters and float buffers (spectral norm's u vectors, batch norm's running
    statistics): what Burn's `num_params` counts."""
    floats = sum(b.numel() for b in module.buffers() if b.is_floating_point())
    return sum(p.numel() for p in module.parameters()) + floats


def main():
    a = parse()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    peer = importlib.import_module(f"torch_peers.{a.loop}").make(a)

    def rate(steps):
        start = time.perf_counter()
        for _ in range(steps):
            peer.step()
        return steps * peer.images_per_step / (time.perf_counter() - start)

    peer.step()  # warm-up
    params = " ".join(f"{name}={state_size(m)}" for name, m in peer.models.items())
    if a.serve:
        print(
            f"ready (torch {torch.__version__}, {torch.get_num_threads()} threads) "
            f"params {params} flops {peer.flops_per_step():.6e}",
            flush=True,
        )
        for line in sys.stdin:
            print(f"{rate(int(line)):.4f}", flush=True)
        print(f"peak_rss_mib {peak_rss_mib():.1f}", flush=True)
        return
    print(
        f"pytorch_{a.loop}_images_per_s_{a.res} {rate(a.steps):.3f}  (torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; params {params}; peak RSS {peak_rss_mib():.0f} MiB)"
    )


if __name__ == "__main__":
    main()
