#!/usr/bin/env bash
# The project's test command (README.md, "Run the tests"); .ci/run calls exactly this.
#   1. fetches the small real test data and the FID Inception weights (idempotent);
#   2. runs every Rust test in release mode;
#   3. installs/updates the notebook kernel and builds the library into it (idempotent: ~30 s
#      once installed and built) and executes every notebook on it with the pytest + nbclient
#      harness in tests/notebooks.
# Set LATENTGAN_SKIP_NOTEBOOKS=1 to stop after step 2.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS=0
python3 datasets/fetch_faces.py
python3 datasets/fetch_labelled.py
python3 datasets/fetch_inception.py
echo "== data ready after ${SECONDS}s"
cargo test --release
echo "== cargo test done after ${SECONDS}s"
if [ "${LATENTGAN_SKIP_NOTEBOOKS:-0}" = 1 ]; then
  exit 0
fi
bash kernel/install.sh
echo "== kernel ready after ${SECONDS}s"
"${LATENTGAN_VENV:-.venv}/bin/python" -m pytest -v tests/notebooks
echo "== notebooks done after ${SECONDS}s"
