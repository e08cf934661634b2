#!/usr/bin/env bash
# Sets up and runs the main job: train the default method on the embedded default data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh train  # no test tools: about half the download of make test's
exec .venv/bin/nocollapse train "$@"
