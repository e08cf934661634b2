"""The contract between the training loop and its callbacks, as a ``typing.Protocol``.

The loop calls all three methods on global rank 0; subclass :class:`BaseCallback`
to implement only the ones you need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from nocollapse.methods import Learner, StepOutput


@runtime_checkable
class Callback(Protocol):
    """Hooks into a training run (``CollapseMonitor`` is one)."""

    def on_log(self, step: int, output: StepOutput, learner: Learner,
               record: dict[str, Any]) -> None:
        """At each log step; add keys to ``record`` before it is written to metrics.jsonl."""
        ...

    def on_epoch_end(self, epoch: int, learner: Learner, run_dir: Path) -> None:
        """After each epoch (``epoch`` counts from 1)."""
        ...

    def on_train_end(self) -> None:
        """When the loop ends, normally or by an exception."""
        ...


class BaseCallback:
    """A :class:`Callback` that does nothing: subclass it and override what you need."""

    def on_log(self, step: int, output: StepOutput, learner: Learner,
               record: dict[str, Any]) -> None:
        return None

    def on_epoch_end(self, epoch: int, learner: Learner, run_dir: Path) -> None:
        return None

    def on_train_end(self) -> None:
        return None


def check_callbacks(callbacks: list[Any]) -> list[Callback]:
    """Refuse an object that lacks one of the hooks, naming it (a TypeError, at the start)."""
    for callback in callbacks:
        if not isinstance(callback, Callback):
            missing = [name for name in ("on_log", "on_epoch_end", "on_train_end")
                       if not callable(getattr(callback, name, None))]
            raise TypeError(f"callback {type(callback).__name__} lacks {', '.join(missing)}; "
                            "subclass nocollapse.train.BaseCallback")
    return list(callbacks)
