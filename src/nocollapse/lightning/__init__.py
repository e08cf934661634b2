"""nocollapse inside PyTorch Lightning: :class:`CollapseCallback` (the ``lightning`` extra).

>>> from nocollapse.lightning import CollapseCallback
>>> trainer = lightning.pytorch.Trainer(callbacks=[CollapseCallback(stop_on_collapse=True)])

See docs/use-your-own-loop.md.
"""

try:
    import lightning.pytorch  # noqa: F401  (the optional dependency, checked here once)
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "nocollapse.lightning needs the 'lightning' package: pip install 'nocollapse[lightning]'"
    ) from error

from nocollapse.lightning.callback import CollapseCallback

__all__ = ["CollapseCallback"]
