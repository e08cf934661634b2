#!/usr/bin/env bash
# Sets up and runs ruff, mypy and the test suite. pytest's exit code 5 (no tests
# collected) counts as a failure: a suite that runs nothing proves nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
.venv/bin/ruff check src tests benchmarks || exit 1
.venv/bin/mypy || exit 1  # static types of src/ (config in pyproject.toml)
.venv/bin/python -m pytest "$@"
rc=$?
if [ "$rc" = 5 ]; then
  echo "pytest collected no tests: failing on purpose"
  exit 1
fi
exit "$rc"
