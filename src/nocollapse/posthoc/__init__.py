"""What is done with a finished run directory, above the loop that wrote it: evaluate it
again by the standard protocol (``nocollapse evaluate``) and export its backbone
(``nocollapse export``). Both rebuild the run's data and learner from its
``config.yaml`` through :mod:`nocollapse.train`'s setup, so they sit above it."""

from nocollapse.posthoc.evaluate_run import evaluate_run
from nocollapse.posthoc.export import export_run

__all__ = ["evaluate_run", "export_run"]
