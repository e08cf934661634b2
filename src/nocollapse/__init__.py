"""nocollapse: non-contrastive self-supervised learning, collapse diagnostics and theory.

Layers (each imports only the ones below it; ``tests/test_layers.py`` enforces it):

    cli -> experiments -> train -> evaluate -> methods -> predictors -> losses
        -> data -> models
    theory (pure numpy/scipy) and diagnostics (numpy-first) sit at the bottom;
    theory may use diagnostics, nothing in them imports torch at module level.
    errors and runio are shared utilities every layer may use.
"""

__version__ = "0.1.0"

import os as _os

# OpenMP threads that finish early spin while they wait for the others. On a machine
# shared with other CPU-bound processes a 2-thread step then ran 10x slower than with
# the threads sleeping instead (benchmarks/bench_threads.py, docs/benchmarks.md).
# The OpenMP runtime reads this once, when torch loads it: so it is set here, before
# any nocollapse module imports torch. An explicit OMP_WAIT_POLICY is kept;
# NOCOLLAPSE_OMP_WAIT_POLICY=keep leaves the runtime's own default.
if _os.environ.get("NOCOLLAPSE_OMP_WAIT_POLICY") != "keep":
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
