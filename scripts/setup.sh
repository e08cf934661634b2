#!/usr/bin/env bash
# Creates (or reuses) .venv and installs nocollapse with everything it needs.
# Usage: scripts/setup.sh [train|dev]: `train` (make demo) installs what training,
# evaluation and reports need; `dev` (make test, the default) adds the test tools, the
# Lightning callback's `lightning` and submitit, about twice the download.
# torch==2.13.0 (CPU build) goes in first when torch is missing, so that no
# dependency range can make pip pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${1:-dev}
case "$EXTRAS" in
  train|dev) ;;
  *) echo "scripts/setup.sh: unknown extras '$EXTRAS' (train or dev)" >&2; exit 2 ;;
esac
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.nocollapse-installed-$EXTRAS
# dev includes train: a dev install up to date serves `make demo` too
if [ "$EXTRAS" = train ] && [ -f .venv/.nocollapse-installed-dev ] \
   && [ ! pyproject.toml -nt .venv/.nocollapse-installed-dev ]; then
  stamp=.venv/.nocollapse-installed-dev
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  "$VPY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  if ! "$VPY" -c "import torch" >/dev/null 2>&1; then
    echo "[setup] installing torch==2.13.0 (CPU build)"
    "$VPY" -m pip install -q "torch==2.13.0"
  fi
  echo "[setup] installing nocollapse and its dependencies"
  "$VPY" -m pip install -q -e ".[$EXTRAS]"
  touch "$stamp"
fi
# The embedded default data set: Debian's Fashion-MNIST, where apt is available.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1 \
   && [ "$(id -u)" = "0" ] && [ -z "${NOCOLLAPSE_NO_APT:-}" ]; then
  echo "[setup] installing Debian's dataset-fashion-mnist"
  (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 \
    || echo "[setup] dataset-fashion-mnist not installed; the default run falls back to scikit-learn's digits"
fi
