"""Progress of the evaluation's phases (features, k-NN, probe, each baseline).

On a terminal: one rich bar per phase. Otherwise (a log file, CI): a line when a phase
starts, a line every ``every_s`` seconds while it runs, and a line with its time when it
ends, so a long evaluation is never silent. ``quiet``: nothing at all.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class EvalProgress:
    """Phases of an evaluation, each a context: ``with progress.phase("k-NN", 10) as p:``."""

    def __init__(self, quiet: bool = False, stream: TextIO | None = None,
                 every_s: float = 10.0):
        self.stream = stream or sys.stderr
        self.console = Console(file=self.stream)
        self.bar = not quiet and self.console.is_terminal
        self.lines = not quiet and not self.console.is_terminal
        self.every_s = every_s

    def phase(self, name: str, total: int, unit: str = "") -> Phase:
        """A phase of ``total`` units (images, query batches, iterations, steps)."""
        return Phase(self, name, max(int(total), 1), unit)


class Phase:
    """One phase: ``advance(n)`` as work is done; the line or bar closes on exit."""

    def __init__(self, owner: EvalProgress, name: str, total: int, unit: str):
        self.owner, self.name, self.total, self.unit = owner, name, total, unit
        self.done = 0
        self._task: TaskID | None = None
        self._bar: Progress | None = None
        self._start = self._last = 0.0

    def __enter__(self) -> Phase:
        owner = self.owner
        self._start = self._last = time.monotonic()
        if owner.bar:  # a bar of its own: a finished phase's bar stays above the next one
            self._bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=owner.console, transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.name, total=self.total)
        elif owner.lines:
            self._print(f"evaluate: {self.name} ({self.total}{self._unit()}) ...")
        return self

    def advance(self, amount: int = 1) -> None:
        self.done = min(self.done + amount, self.total)
        owner = self.owner
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.done)
        elif owner.lines:
            now = time.monotonic()
            if now - self._last >= owner.every_s and self.done < self.total:
                self._print(f"evaluate: {self.name} {self.done}/{self.total}{self._unit()}, "
                            f"{now - self._start:.0f} s")
                self._last = now

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        owner = self.owner
        if self._bar is not None and self._task is not None:
            if kind is None:
                self._bar.update(self._task, completed=self.total)
            self._bar.stop()
        elif owner.lines and kind is None:
            self._print(f"evaluate: {self.name} done in {time.monotonic() - self._start:.0f} s")

    def _unit(self) -> str:
        return f" {self.unit}" if self.unit else ""

    def _print(self, text: str) -> None:
        print(text, file=self.owner.stream, flush=True)


QUIET = EvalProgress(quiet=True)
