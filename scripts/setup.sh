#!/usr/bin/env bash
# Creates (or reuses) .venv and installs nocollapse with everything it needs.
# torch==2.13.0 (CPU build) goes in first when torch is missing, so that no
# dependency range can make pip pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.nocollapse-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
    echo "[setup] installing torch==2.13.0 (CPU build)"
    "$VPY" -m pip install -q "torch==2.13.0"
  fi
  echo "[setup] installing nocollapse and its dependencies"
  "$VPY" -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
# The embedded default data set: Debian's Fashion-MNIST, where apt is available.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1 \
   && [ "$(id -u)" = "0" ] && [ -z "${NOCOLLAPSE_NO_APT:-}" ]; then
  echo "[setup] installing Debian's dataset-fashion-mnist"
  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
    || echo "[setup] dataset-fashion-mnist not installed; the default run falls back to scikit-learn's digits"
fi
