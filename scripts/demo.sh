#!/usr/bin/env bash
# Sets up and runs the main job: the whole default recipe on the embedded default data
# (8 epochs, 3744 steps), in bfloat16 where
# the CPU computes it natively (device.precision=auto: AVX512-BF16 / AMX; float32
# elsewhere), so that a first run, setup and evaluation included, stays within 5 minutes
# on 2 cores. A fixed number of steps: the result does not depend on the host's speed.
# `nocollapse train` with no argument trains the same 8 epochs in float32 (docs/quality.md);
# other arguments are passed on.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh train  # no test tools: about half the download of make test's
exec .venv/bin/nocollapse train device.precision=auto "$@"
