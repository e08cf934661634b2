"""A predictor matrix computed now or on a worker thread, installed when it is next needed.

With ``update="after"`` the matrix built from ``F_hat`` at step ``t`` is first used at
step ``t + 1``, so its eigendecomposition can run on a worker thread while the rest
of step ``t`` (backward, optimiser step) and the data of step ``t + 1`` are computed.
PyTorch's linear algebra releases the GIL, so the thread runs beside the main one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import torch

_EXECUTOR: ThreadPoolExecutor | None = None
_LOCK = threading.Lock()


def _forget_executor() -> None:
    global _EXECUTOR
    _EXECUTOR = None  # a forked child has no worker thread: it starts its own


os.register_at_fork(after_in_child=_forget_executor)


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    with _LOCK:
        if _EXECUTOR is None:  # one worker: rebuilds of one run never overtake each other
            _EXECUTOR = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nocollapse-wp")
        return _EXECUTOR


class PendingMatrix:
    """At most one matrix waiting to be installed; ``take()`` returns it (waiting if needed)."""

    def __init__(self) -> None:
        self._value: Future[torch.Tensor] | torch.Tensor | None = None

    def put(self, build: Callable[[], torch.Tensor], background: bool) -> None:
        """Compute ``build()`` now, or start it on the worker thread; replaces a waiting one."""
        self.take()  # a rebuild never overtakes the previous one
        self._value = _executor().submit(build) if background else build()

    def take(self) -> torch.Tensor | None:
        """The waiting matrix (after its thread finishes), or ``None``; clears it."""
        value, self._value = self._value, None
        if isinstance(value, Future):
            return value.result()
        return value

    def __bool__(self) -> bool:
        return self._value is not None
