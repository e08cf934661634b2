"""The rich progress bar of a training run: loss, images/s and ETA, host-side only."""

from __future__ import annotations

import sys
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainProgress:
    """A progress bar over steps; shown only on a terminal and when not ``quiet``.

    ``advance`` costs no device sync; loss and throughput are shown as of the last
    log step, because reading the loss forces a sync.
    """

    def __init__(self, total_steps: int, start_step: int = 0, quiet: bool = False):
        console = Console(file=sys.stderr)
        self.enabled = not quiet and console.is_terminal
        self._progress = Progress(
            TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]} img/s"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=console, disable=not self.enabled, transient=False,
        )
        self._task = self._progress.add_task("train", total=total_steps, completed=start_step,
                                             loss="-", speed="-")

    def __enter__(self) -> TrainProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def advance(self, steps: int = 1) -> None:
        self._progress.advance(self._task, steps)

    def show(self, record: dict[str, Any]) -> None:
        """Update the loss and images/s fields from a logged record."""
        self._progress.update(self._task, loss=f"{record.get('loss', float('nan')):.4f}",
                              speed=f"{record.get('images_per_s', 0.0):.0f}")
