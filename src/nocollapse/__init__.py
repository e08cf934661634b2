"""nocollapse: non-contrastive self-supervised learning, collapse diagnostics and theory.

Layers (each imports only the ones below it; ``tests/test_layers.py`` enforces it):

    cli -> experiments -> train -> evaluate -> methods -> predictors -> losses
        -> data -> models
    monitor (framework-free collapse monitor: tensors in, run files out) sits under
    train and uses only diagnostics;
    theory (pure numpy/scipy) and diagnostics (numpy-first) sit at the bottom;
    theory may use diagnostics, nothing in them imports torch at module level.
    errors, runio, threads and plugins are shared utilities every layer may use
    (plugins: installed packages that register predictors, losses and data sets).
"""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Monitor", "__version__", "load_backbone"]

if TYPE_CHECKING:
    from nocollapse.models.export import load_backbone
    from nocollapse.monitor import Monitor


def __getattr__(name: str) -> Any:
    """``nocollapse.Monitor`` and ``nocollapse.load_backbone``, imported on first use
    (``import nocollapse`` needs no torch)."""
    if name == "Monitor":
        from nocollapse.monitor import Monitor

        return Monitor
    if name == "load_backbone":
        from nocollapse.models.export import load_backbone

        return load_backbone
    raise AttributeError(f"module 'nocollapse' has no attribute {name!r}")
