"""Progress of a training run: a rich bar on a terminal, a plain line every N seconds otherwise.

Both show loss, source images/s and the ETA, host-side only (no device sync).
"""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

import torch
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nocollapse.runio.records import TrainLogLine


def _clock(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class TrainProgress:
    """Progress over steps; nothing when ``quiet``.

    On a terminal: a rich bar. Otherwise (a log file, CI): one line every ``every_s``
    seconds with the step, the last logged loss, source images/s over that interval
    (``images_per_step`` = batch x processes) and the ETA at that speed.
    ``advance`` costs no device sync; the loss is the one of the last log step.
    """

    def __init__(self, total_steps: int, start_step: int = 0, quiet: bool = False,
                 images_per_step: int = 0, every_s: float = 30.0,
                 stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        console = Console(file=self.stream)
        self.terminal = console.is_terminal
        self.enabled = not quiet and self.terminal
        self.lines = not quiet and not self.terminal
        self.total, self.step, self.every_s = total_steps, start_step, every_s
        self.images_per_step, self.loss = images_per_step, float("nan")
        self._last_time, self._last_step = time.monotonic(), start_step
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

    def header(self, text: str) -> None:
        """One line before the first step (the run header), shown unless ``quiet``."""
        if self.enabled or self.lines:
            print(text, file=self.stream, flush=True)

    def advance(self, steps: int = 1) -> None:
        self._progress.advance(self._task, steps)
        self.step += steps
        if self.lines:
            now = time.monotonic()
            if now - self._last_time >= self.every_s or self.step == self.total:
                self._print_line(now)

    def _print_line(self, now: float) -> None:
        rate = (self.step - self._last_step) / max(now - self._last_time, 1e-9)
        eta = (self.total - self.step) / rate if rate > 0 else float("inf")
        print(f"train step {self.step}/{self.total} loss {self.loss:.4f} "
              f"{rate * self.images_per_step:.0f} images/s ETA "
              f"{_clock(eta) if eta != float('inf') else '-'}", file=self.stream, flush=True)
        self._last_time, self._last_step = now, self.step

    def show(self, line: TrainLogLine) -> None:
        """Update the loss and images/s fields from a logged line."""
        self.loss = line["loss"]
        self._progress.update(self._task, loss=f"{self.loss:.4f}",
                              speed=f"{line['images_per_s']:.0f}")


def run_header(method: str, data: str, images: int, total_steps: int, device: str,
               tuned: bool = False, precision: str = "") -> str:
    """The run's first line: what trains on what, in which precision (and why), and the CPU
    thread setting it runs with."""
    policy = os.environ.get("OMP_WAIT_POLICY", "runtime default")
    how = ("tuned by measurement as the load changes; device.threads=N fixes it"
           if tuned else "fixed")
    return (f"nocollapse train: {method} on {data} ({images} images), {total_steps} steps, "
            f"device {device}{', precision ' + precision if precision else ''}, "
            f"{torch.get_num_threads()} torch threads, {how} (OMP_WAIT_POLICY={policy})")
