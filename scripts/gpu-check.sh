#!/usr/bin/env bash
# For the day an NVIDIA GPU is there: builds `--features cuda`, runs the GPU-path tests on CUDA
# (scripts/gpu-tests.sh cuda: every FID test, the host-read counts, and every notebook on the
# "Rust (latentgan, cuda)" kernel, whose GANs train for LATENTGAN_NOTEBOOK_SECONDS, 30 s), then the
# throughput of each training loop at 64², 128² and 256² (the code GAN and the pixel GAN:
# benches/stage2.rs; SAGAN's conditional model: benches/sagan.rs) and FID's images/s
# (benches/fid.rs), with the peak device memory of each phase (nvidia-smi, sampled every 0.5 s).
# Ends with the lines to paste into BENCHMARKS.md (also kept in $OUT/gpu-check.log or ./).
#
#   bash scripts/gpu-check.sh            (needs the CUDA toolkit; about 15 min on a warm build)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-.}/gpu-check.log"
memory="${OUT:-.}/gpu-memory.log"
SECONDS=0
# "<seconds> <MiB used>" every half second, for the peaks below.
(while :; do
  echo "$SECONDS $(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)"
  sleep 0.5
done) > "$memory" 2>/dev/null &
sampler=$!
trap 'kill $sampler 2>/dev/null || true' EXIT
phase_start=0
# Ends a phase: its time and the peak device memory sampled during it.
phase() {
  local peak
  peak=$(awk -v t="$phase_start" '$1 >= t && $2 + 0 > m { m = $2 + 0 } END { print m + 0 }' "$memory")
  echo "== $1 after ${SECONDS}s ($((SECONDS - phase_start)) s; peak device memory ${peak} MiB)"
  phase_start=$SECONDS
}
{
  echo "== $(date -u +%FT%TZ) $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
  cargo build --release --features cuda
  phase "cuda build"
  LATENTGAN_GPU_FID=all LATENTGAN_GPU_NOTEBOOKS=none bash scripts/gpu-tests.sh cuda
  phase "GPU-path tests"
  # Every notebook on the cuda kernel (in evcxr's dylib mode: docs/GUIDE.md, "On a GPU"); a
  # failure is reported, not fatal, so that the benchmarks below still run.
  bash kernel/install.sh --backend cuda
  LATENTGAN_KERNEL=latentgan-cuda LATENTGAN_NOTEBOOK_SECONDS=30 \
    LATENTGAN_EXECUTED_DIR="${OUT:-target}/notebooks-cuda" \
    .venv/bin/python -m pytest -v tests/notebooks \
    || echo "== notebooks on the cuda kernel: FAILED (above)"
  phase "every notebook on the cuda kernel"
  cargo bench --features cuda --bench stage2 -- --res 64,128,256 --steps 5
  phase "code GAN and pixel GAN throughput"
  cargo bench --features cuda --bench sagan -- --res 64,128,256 --ch 64 --batch 32 --steps 5
  phase "SAGAN conditional throughput"
  cargo bench --features cuda --bench fid -- --n 512 --size 128 --batch 64
  phase "FID bench"
} 2>&1 | tee "$out"
echo
echo "== for BENCHMARKS.md (from $out):"
grep -E "^(backend|code_gan|pixel_gan|sagan|latentgan_|pytorch|ratio|test result|== |PASSED|FAILED|tests/notebooks)" "$out" || true
