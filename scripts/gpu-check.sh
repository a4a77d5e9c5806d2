#!/usr/bin/env bash
# For the day an NVIDIA GPU is there: builds `--features cuda`, runs the GPU-path tests on CUDA
# (scripts/gpu-tests.sh cuda, every FID test among them), then the stage-2 benchmark at 64², 128²
# and 256² and the FID benchmark, and ends with the lines to paste into BENCHMARKS.md (also kept
# in $OUT or ./).
#
#   bash scripts/gpu-check.sh            (needs the CUDA toolkit; about 15 min on a warm build)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}/gpu-check.log"
SECONDS=0
{
  echo "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  cargo build --release --features cuda
  echo "== cuda build after ${SECONDS}s"
  LATENTGAN_GPU_FID=all bash scripts/gpu-tests.sh cuda   # every FID test: seconds on a real GPU
  echo "== GPU-path tests after ${SECONDS}s"
  cargo bench --features cuda --bench stage2 -- --res 64,128,256 --steps 5
  echo "== stage-2 bench after ${SECONDS}s"
  cargo bench --features cuda --bench fid -- --n 512 --size 128 --batch 64
  echo "== FID bench after ${SECONDS}s"
} 2>&1 | tee "$out"
echo
echo "== for BENCHMARKS.md (from $out):"
grep -E "^(backend|code_gan|pixel_gan|sagan|latentgan_|pytorch|ratio|test result|== )" "$out" || true
