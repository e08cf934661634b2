#!/usr/bin/env bash
# Sets up and runs ruff, mypy and the test suite, then the numerical tests again under
# MKL's other code paths (a tolerance tuned to one CPU fails there; docs/extending.md#tests).
# pytest's exit code 5 (no tests collected) counts as a failure: a suite that runs
# nothing proves nothing.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || exit 1
.venv/bin/ruff check src tests benchmarks examples || exit 1
.venv/bin/mypy || exit 1  # static types of src/ (config in pyproject.toml)

run_pytest() {
  "$@"
  local rc=$?
  if [ "$rc" = 5 ]; then
    echo "pytest collected no tests: failing on purpose"
    return 1
  fi
  return "$rc"
}

run_pytest .venv/bin/python -m pytest "$@" || exit $?
# MKL picks its kernels by CPU (AVX-512 here, AVX2 or older elsewhere), and each rounds
# differently: the tests marked `numerical` must hold on every path, not just this one.
for path in AVX2 COMPATIBLE; do
  echo "numerical tests under MKL_CBWR=$path"
  run_pytest env MKL_CBWR="$path" .venv/bin/python -m pytest -m numerical || exit $?
done
