#!/usr/bin/env bash
# Every training loop against its PyTorch peer (benches/peers.rs): installs Debian's torch
# (python3-torch, CPU, oneDNN) when /usr/bin/python3 cannot import it, fetches the faces and the
# digits, and runs `cargo bench --bench peers` with the peer found through
# LATENTGAN_TORCH_PYTHON. Arguments go to the bench: `bash scripts/bench-peers.sh --loops
# sagan32 --reps 5`. Debian/Ubuntu, as root or with sudo for the install. Run it on a quiet
# machine: the two sides alternate, but other load still widens the spread.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${LATENTGAN_TORCH_PYTHON:-/usr/bin/python3}"
if ! "$python" -c "import torch" 2>/dev/null; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends python3-torch
  python=/usr/bin/python3
fi
python3 datasets/fetch_faces.py
python3 datasets/fetch_labelled.py
LATENTGAN_TORCH_PYTHON="$python" cargo bench --bench peers -- "$@"
