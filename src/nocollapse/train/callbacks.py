"""The contract between the training loop and its callbacks, as a ``typing.Protocol``.

The loop calls all three methods on global rank 0; subclass :class:`BaseCallback`
to implement only the ones you need. A callback with state that must survive a
resume may also be :class:`Stateful`: ``state_dict() -> dict`` (tensors and plain values
only) and ``load_state_dict(state)``; the loop stores the state in each checkpoint and
hands it back on ``--resume`` (``nocollapse.monitor.CollapseMonitor`` keeps its whole
state this way).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

from nocollapse.methods import Learner, StepOutput


@runtime_checkable
class Callback(Protocol):
    """Hooks into a training run (``CollapseMonitor`` is one)."""

    def on_log(self, step: int, output: StepOutput, learner: Learner,
               record: dict[str, object]) -> None:
        """At each log step; add keys to ``record`` before it is written to metrics.jsonl."""
        ...

    def on_epoch_end(self, epoch: int, learner: Learner, run_dir: Path) -> None:
        """After each epoch (``epoch`` counts from 1)."""
        ...

    def on_train_end(self) -> None:
        """When the loop ends, normally or by an exception."""
        ...


@runtime_checkable
class Stateful(Protocol):
    """A callback whose state survives a resume (both methods, or neither is called)."""

    def state_dict(self) -> dict[str, object]:
        """Tensors and plain values only (the checkpoint loads with ``weights_only``)."""
        ...

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Inverse of :meth:`state_dict`."""
        ...


class BaseCallback:
    """A :class:`Callback` that does nothing: subclass it and override what you need."""

    def on_log(self, step: int, output: StepOutput, learner: Learner,
               record: dict[str, object]) -> None:
        return None

    def on_epoch_end(self, epoch: int, learner: Learner, run_dir: Path) -> None:
        return None

    def on_train_end(self) -> None:
        return None


def check_callbacks(callbacks: list[object]) -> list[Callback]:
    """Refuse an object that lacks one of the hooks, naming it (a TypeError, at the start)."""
    for callback in callbacks:
        if not isinstance(callback, Callback):
            missing = [name for name in ("on_log", "on_epoch_end", "on_train_end")
                       if not callable(getattr(callback, name, None))]
            raise TypeError(f"callback {type(callback).__name__} lacks {', '.join(missing)}; "
                            "subclass nocollapse.train.BaseCallback")
    return [callback for callback in callbacks if isinstance(callback, Callback)]


def callback_states(callbacks: list[Callback]) -> dict[str, object]:
    """``state_dict()`` of each :class:`Stateful` callback, keyed by position and class."""
    return {f"{i}:{type(callback).__name__}": callback.state_dict()
            for i, callback in enumerate(callbacks) if isinstance(callback, Stateful)}


def restore_callback_states(callbacks: list[Callback], states: dict[str, object]) -> None:
    """Inverse of :func:`callback_states` (the same callbacks, in the same order)."""
    for i, callback in enumerate(callbacks):
        key = f"{i}:{type(callback).__name__}"
        if key in states and isinstance(callback, Stateful):
            state = states[key]
            if not isinstance(state, dict):
                raise TypeError(f"the saved state of callback {key} is a "
                                f"{type(state).__name__}, not a mapping")
            callback.load_state_dict(state)
