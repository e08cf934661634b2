#!/usr/bin/env bash
# Sets up and runs the main job: the default recipe on the embedded default data, at 4 of
# its 8 epochs (the whole learning-rate schedule over 1872 steps), so that a first run,
# setup and evaluation included, takes under 5 minutes on 2 cores. `nocollapse train`
# with no argument trains all 8 (docs/quality.md); other arguments are passed on.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh train  # no test tools: about half the download of make test's
exec .venv/bin/nocollapse train epochs=4 "$@"
