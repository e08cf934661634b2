"""The CPU thread count, chosen by measurement while a run goes.

On an idle 2-core machine a 2-thread step is about 1.6x faster than a 1-thread step;
with one other CPU-bound process on the machine the 2-thread step becomes 2-2.5x
slower, while a 1-thread step keeps its idle speed (``benchmarks/bench_threads.py``,
docs/benchmarks.md). No fixed count is best in both cases, so a CPU run whose
``device.threads`` is unset starts on every core and, every ``every`` steps, times a
few steps at each smaller candidate count against the steps just before: a candidate
at least ``margin`` faster is kept, otherwise the count goes back. A competitor that
starts or stops mid-run is found at the next probe.

The thread count changes the order of floating-point sums, so such a run is not
bit-for-bit repeatable; ``device.threads=N`` fixes the count and turns the tuner off.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch


def tuner_for(device: torch.device, fixed: bool = False) -> ThreadTuner | None:
    """A tuner for a loop of steps on ``device``; None on accelerators, with one thread,
    or when the thread count was ``fixed`` by the user."""
    if fixed or device.type != "cpu" or torch.get_num_threads() < 2:
        return None
    return ThreadTuner(torch.get_num_threads())


def candidate_counts(max_threads: int) -> list[int]:
    """The counts worth trying below ``max_threads``: one fewer and half, largest first."""
    return sorted({max(1, max_threads - 1), max(1, max_threads // 2)} - {max_threads},
                  reverse=True)


class ThreadTuner:
    """Feed it each step's duration (:meth:`record`); it sets the thread count it measures best.

    ``set_threads`` is ``torch.set_num_threads`` unless a test passes its own.
    ``first`` steps run before the first probe (a competitor present from the start
    is found early), then one probe every ``every`` steps; a probe times ``window``
    steps after one warm-up step, against the median of the ``window`` steps before it,
    and ends at once on a step ``give_up`` times slower than that median (on an
    oversubscribed machine a 2-thread step can take 10x a 1-thread step).
    """

    def __init__(self, max_threads: int, *, first: int = 10, every: int = 400, window: int = 8,
                 margin: float = 0.1, give_up: float = 3.0,
                 set_threads: Callable[[int], None] = torch.set_num_threads) -> None:
        self.best, self.max_threads = max_threads, max_threads
        self.first, self.every, self.window, self.margin = first, every, window, margin
        self.give_up = give_up
        self.set_threads = set_threads
        self._until_probe = first
        self._recent: list[float] = []
        self._probing: int | None = None
        self._probe: list[float] = []
        self._baseline = 0.0
        self._next = 0  # index into the candidates of the next probe

    @property
    def threads(self) -> int:
        """The count the steps now run with."""
        return self._probing if self._probing is not None else self.best

    def record(self, seconds: float) -> None:
        """One step took ``seconds`` at :attr:`threads`; maybe start or end a probe."""
        if self._probing is not None:
            self._probe.append(seconds)
            if seconds > self.give_up * self._baseline:
                self._end_probe(keep=False)  # far slower: do not spend a whole window on it
            elif len(self._probe) > self.window:  # the first step after a switch is warm-up
                self._end_probe(keep=None)
            return
        self._recent = [*self._recent, seconds][-self.window:]
        self._until_probe -= 1
        if self._until_probe <= 0 and len(self._recent) == self.window:
            self._start_probe()

    def _alternatives(self) -> list[int]:
        return [n for n in [self.max_threads, *candidate_counts(self.max_threads)]
                if n != self.best]

    def _start_probe(self) -> None:
        alternatives = self._alternatives()
        if not alternatives:
            self._until_probe = self.every
            return
        self._baseline = statistics.median(self._recent)
        self._probing = alternatives[self._next % len(alternatives)]
        self._next += 1
        self._probe = []
        self.set_threads(self._probing)

    def _end_probe(self, keep: bool | None) -> None:
        assert self._probing is not None
        if keep is None:
            keep = statistics.median(self._probe[1:]) < self._baseline * (1.0 - self.margin)
        if keep:
            self.best = self._probing
        else:
            self.set_threads(self.best)
        self._probing, self._probe, self._recent = None, [], []
        self._until_probe = self.every
