#!/usr/bin/env bash
# The GPU-path tests: the crate's tests that run on Burn's GPU (CubeCL) kernels, built with one
# GPU feature, each checked against a reference:
#   --lib        every unit test on the GPU backend: the penalty's input and weight gradients
#                against finite differences, spectral norm, attention rows summing to 1, ...;
#   --test gpu   every training loop trained 2 steps on the CPU, then resumed on the CPU and on the
#                GPU from that checkpoint: losses equal within a stated tolerance; a GPU run's
#                model sampled, interpolated and its attention read back;
#   --test host_reads  every training loop reads its losses back once per log step, never
#                between (each read stalls the GPU);
#   --test fid   Inception's pool3 features of six images against pytorch-fid's (within 1e-4),
#                and `latentgan fid A B --json` on three against three of them against the FID
#                of pytorch-fid's features (relative error < 1e-3). Both read batches of 3, so
#                the autotuned kernels (keyed by batch size) serve both.
# With LATENTGAN_GPU_FID=all, every FID test, among them `latentgan fid` on two folders of 50 faces
# against pytorch-fid's FID: 16 min on a cold lavapipe (autotune times every candidate kernel of
# every Inception convolution 13 times), 392 s warm (2026-12-04: FID 99.2620647 vs pytorch-fid's
# 99.2620255, relative 3.9e-7).
#
# Then the notebooks on the GPU kernel (kernel/install.sh --backend wgpu|cuda, built once into its
# own directory: see BENCHMARKS.md for the cold build), run by the notebook harness with
# LATENTGAN_KERNEL=latentgan-wgpu, their training capped by LATENTGAN_NOTEBOOK_SECONDS (30 here):
# LATENTGAN_GPU_NOTEBOOKS=00 (the default) notebook 00; =short also notebook 02 without its FID
# cells (tagged `fid`: Inception on lavapipe takes minutes; both passed on lavapipe, 46 min with
# the machine busy: BENCHMARKS.md); =all every notebook (scripts/gpu-check.sh, on a real GPU);
# =none none. The executed copies, with their
# images, are kept in target/notebooks-wgpu/ (LATENTGAN_EXECUTED_DIR).
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
# Any Vulkan driver will do: its manifest sits in one of the loader's folders.
if [ "$feature" = wgpu ] && ! compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null \
  && ! compgen -G "/etc/vulkan/icd.d/*.json" >/dev/null; then
  echo "no Vulkan driver found: install one (without a GPU: bash scripts/install-lavapipe.sh)" >&2
  exit 1
fi
python3 datasets/fetch_faces.py
python3 datasets/fetch_labelled.py
python3 datasets/fetch_inception.py
# CubeCL keeps autotune results in target/autotune beside Cargo.toml (the tests' working
# directory), whatever CARGO_TARGET_DIR says: point it at a cache that outlives the checkout.
cache="${LATENTGAN_AUTOTUNE_CACHE:-$HOME/.cache/latentgan/autotune}"
mkdir -p "$cache" target
[ -e target/autotune ] || ln -s "$cache" target/autotune
SECONDS=0
cargo test --release --features "$feature" --lib --test gpu --test host_reads -- --test-threads=1
fid_tests=(inception_features_match_pytorch_fid fid_command_agrees_with_pytorch_fid_features)
[ "${LATENTGAN_GPU_FID:-}" = all ] && fid_tests=()
cargo test --release --features "$feature" --test fid -- --test-threads=1 "${fid_tests[@]}"
echo "== GPU-path tests ($feature) took ${SECONDS}s"

notebooks="${LATENTGAN_GPU_NOTEBOOKS:-00}"
if [ "$notebooks" != none ]; then
  t=$SECONDS
  bash kernel/install.sh --backend "$feature"
  echo "== the $feature kernel ready after $((SECONDS - t))s"
  case "$notebooks" in
    00) selection=(-k "00_quickstart") ;;
    short) selection=(-k "00_quickstart or 02_stage2") ;;
    *) selection=() ;;
  esac
  # On lavapipe Inception takes minutes per 100 images: leave out the FID cells (tag `fid`).
  skip=""
  [ "$feature" = wgpu ] && [ "$notebooks" != all ] && skip=fid
  # The notebooks' own run directories: the GPU kernel trains them again rather than load the
  # CPU kernel's (stage 1 in notebook 02 resumes its run directory).
  rm -rf notebooks/runs
  # Mesa prints "XDG_RUNTIME_DIR is invalid" into every cell's stderr without one (headless).
  if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR="$(mktemp -d)"
    export XDG_RUNTIME_DIR
  fi
  LATENTGAN_SKIP_TAG="${LATENTGAN_SKIP_TAG:-$skip}" \
    LATENTGAN_KERNEL="latentgan-$feature" \
    LATENTGAN_NOTEBOOK_SECONDS="${LATENTGAN_NOTEBOOK_SECONDS:-30}" \
    LATENTGAN_EXECUTED_DIR="${LATENTGAN_EXECUTED_DIR:-target/notebooks-$feature}" \
    "${LATENTGAN_VENV:-.venv}/bin/python" -m pytest -v tests/notebooks "${selection[@]}"
  echo "== notebooks on the $feature kernel took $((SECONDS - t))s (kernel build included)"
fi
