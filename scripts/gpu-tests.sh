#!/usr/bin/env bash
# The GPU-path tests: the crate's tests that run on Burn's GPU (CubeCL) kernels, built with one
# GPU feature, each checked against a reference:
#   --lib        every unit test on the GPU backend: the penalty's input and weight gradients
#                against finite differences, spectral norm, attention rows summing to 1, ...;
#   --test gpu   every training loop trained 2 steps on the CPU, then resumed on the CPU and on the
#                GPU from that checkpoint: losses equal within a stated tolerance; a GPU run's
#                model sampled, interpolated and its attention read back;
# Add `--test fid` (LATENTGAN_GPU_FID=1) for Inception and `latentgan fid A B` against pytorch-fid:
# on lavapipe it takes over 20 minutes and the CLI's batch of 299² images fails inside CubeCL
# ("can't allocate buffer of size: 177020928", lavapipe's buffer limit), so CI leaves it out.
#
#   scripts/gpu-tests.sh [wgpu|cuda]      (default wgpu)
#
# Without a GPU, wgpu runs on Mesa's lavapipe, a Vulkan driver on the CPU
# (scripts/install-lavapipe.sh). The first run on a machine compiles every shader and autotunes
# every kernel; both are kept (Mesa's cache in ~/.cache/mesa_shader_cache, CubeCL's autotune
# results in ~/.cache/latentgan/autotune), so later runs skip that work.
set -euo pipefail
cd "$(dirname "$0")/.."
feature="${1:-wgpu}"
case "$feature" in
  wgpu | cuda) ;;
  *) echo "usage: $0 [wgpu|cuda]" >&2; exit 2 ;;
esac
if [ "$feature" = wgpu ] && ! ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1; then
  echo "no Vulkan driver found: install one (without a GPU: bash scripts/install-lavapipe.sh)" >&2
  exit 1
fi
python3 datasets/fetch_faces.py
python3 datasets/fetch_inception.py
# CubeCL keeps autotune results in target/autotune beside Cargo.toml (the tests' working
# directory), whatever CARGO_TARGET_DIR says: point it at a cache that outlives the checkout.
cache="${LATENTGAN_AUTOTUNE_CACHE:-$HOME/.cache/latentgan/autotune}"
mkdir -p "$cache" target
[ -e target/autotune ] || ln -s "$cache" target/autotune
SECONDS=0
targets=(--lib --test gpu)
[ "${LATENTGAN_GPU_FID:-0}" = 1 ] && targets+=(--test fid)
cargo test --release --features "$feature" "${targets[@]}" -- --test-threads=1
echo "== GPU-path tests ($feature) took ${SECONDS}s"
