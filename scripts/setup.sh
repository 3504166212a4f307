#!/usr/bin/env bash
# Create .venv and install seilab with everything the main job and the tests need.
# Torch is installed first as a CPU build so that the `torch` requirement does not pull
# several GB of CUDA packages; xgboost comes as xgboost-cpu on Linux (see pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null
if ! python -c "import torch" 2>/dev/null; then
  pip install -q --retries 0 --timeout 10 torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu 2>/dev/null \
    || pip install -q torch==2.13.0 \
    || pip install -q "torch>=2.2"
fi
pip install -q -e ".[ml,cluster,dev]"
# compile the simulator's kernels into Numba's cache now (about a minute), so that the first
# simulation after install starts in seconds; later processes load the cache
python -m seilab warmup
echo "seilab $(python -c 'import seilab; print(seilab.__version__)') installed in .venv"
