"""Run a sweep: validate every cell, store the spec, measure the baseline, launch, tabulate.

Nothing is written before every cell's configuration has been resolved and checked
(:func:`prepare`). A rerun of the same sweep skips the cells that are done (their
files untouched), resumes the ones killed mid-run from their checkpoints and refuses a
grid that differs from the one stored in ``SWEEP_DIR/sweep.yaml``, naming the
difference.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from nocollapse.errors import ConfigError, NocollapseError
from nocollapse.runio import LOCK_FILE, SWEEP_CELLS_DIR, SWEEP_SPEC_FILE, ensure_dir
from nocollapse.runio.lock import RunLock
from nocollapse.runio.records import CellRecord, SweepTable
from nocollapse.sweep.baseline import baseline_key, random_init_knn
from nocollapse.sweep.cell import read_outcome
from nocollapse.sweep.launch import SlurmOptions, check_slurm, launch_local, launch_slurm
from nocollapse.sweep.outcome import RUN_DIR_FIGURES
from nocollapse.sweep.spec import (
    Cell,
    SweepSpec,
    check_out_dir,
    cores,
    differences,
    stored_spec,
    write_spec,
)
from nocollapse.sweep.table import build_table, write_table
from nocollapse.sweep.workers import sigterm_interrupts
from nocollapse.train.estimate import estimate_run

LAUNCHERS = ("local", "slurm")
# Fields of a record that measure time or how the cell got done, not what it computed.
TIMING_KEYS = ("seconds", "train_seconds", "label_free_seconds", "resumed")


@dataclass
class SweepRequest:
    """A sweep to run: its spec, directory and launcher."""

    spec: SweepSpec
    out: Path
    launcher: str = "local"
    workers: int = 1
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    stream: TextIO | None = None  # progress lines (None: stdout)


def prepare(request: SweepRequest) -> list[Cell]:
    """Every cell resolved and validated, the directory and grid checked; writes nothing."""
    out = request.out
    check_out_dir(out)
    if request.launcher not in LAUNCHERS:
        raise ConfigError(f"--launcher {request.launcher!r} is not one of {', '.join(LAUNCHERS)}")
    if request.launcher == "slurm":
        check_slurm(request.slurm)
        threads = request.slurm.cpus_per_task
    else:
        if request.workers < 1:
            raise ConfigError(f"--workers {request.workers} must be >= 1")
        threads = max(1, cores() // request.workers)
    cells = request.spec.cells(out, threads)
    refuse_linked_cells(out, cells)
    if request.launcher == "local":
        most = max(cell.config.device.threads or 1 for cell in cells)
        if most * request.workers > cores():
            raise ConfigError(f"--workers {request.workers} x device.threads={most} = "
                              f"{most * request.workers} threads, more than the {cores()} "
                              "cores here; lower --workers or device.threads")
    check_stored(out, request.spec)
    return cells


def refuse_linked_cells(out: Path, cells: list[Cell]) -> None:
    """A sweep's cells are its own folders: a symlink among them (to another cell, or out of
    the sweep) is refused, never followed."""
    for path in (out / SWEEP_CELLS_DIR, *(Path(cell.config.out) for cell in cells)):
        if path.is_symlink():
            raise ConfigError(f"{path} is a symlink; a sweep's cells must be folders of their "
                              "own. Remove the link (or move the folder it points to in its "
                              "place) and run the sweep again")


def check_stored(out: Path, spec: SweepSpec) -> None:
    """Refuse a folder holding another sweep (naming the differences) or other files."""
    stored = stored_spec(out)
    if stored is not None:
        changed = differences(stored, spec)
        if changed:
            raise ConfigError(f"{out} holds a different sweep: {'; '.join(changed)}. Rerun "
                              f"with the grid stored in {out / SWEEP_SPEC_FILE}, or choose "
                              "another --out")
    elif out.is_dir() and any(entry.name != LOCK_FILE for entry in out.iterdir()):
        raise ConfigError(f"{out} is a folder holding other files and no {SWEEP_SPEC_FILE}; "
                          "choose a new or empty folder for the sweep")


def run_sweep(request: SweepRequest) -> SweepTable:
    """Run (or continue) the sweep; returns the table written to ``sweep.json``.

    The sweep holds ``SWEEP_DIR/.lock`` while it runs: a second sweep into the same
    folder is refused (ConfigError naming the holder's pid) before it writes anything.
    SIGTERM is handled as Ctrl-C (:class:`~nocollapse.sweep.workers.SweepInterrupted`).
    """
    cells = prepare(request)
    out = request.out
    ensure_dir(out, "sweep directory")
    lock = RunLock(out)
    try:
        with sigterm_interrupts():
            check_stored(out, request.spec)  # another sweep may have started it meanwhile
            return _run_locked(request, cells)
    finally:
        lock.release()


def _run_locked(request: SweepRequest, cells: list[Cell]) -> SweepTable:
    out, stream = request.out, request.stream or sys.stdout
    if stored_spec(out) is None:
        write_spec(out, request.spec)
    records: dict[str, CellRecord] = {}
    todo = []
    for cell in cells:
        done = read_outcome(Path(cell.config.out), cell.name)
        if done is not None and done.keys() >= RUN_DIR_FIGURES:
            records[cell.name] = done
        else:
            todo.append(cell)
    at_once = (request.slurm.array_parallelism if request.launcher == "slurm"
               else request.workers)
    progress = Progress(len(cells), len(cells) - len(todo), at_once, stream)
    if records:
        progress.say(f"{len(records)} of {len(cells)} cells already done: skipped")
    if todo:
        progress.say(_estimate_line(todo[0], len(todo), at_once))
    baselines = random_init_knn(cells, out, _notice)

    def on_done(record: CellRecord) -> None:
        records[str(record["name"])] = record
        progress.cell_done(record)

    jobs = [(cell.config.to_dict(), cell.name) for cell in todo]
    if request.launcher == "slurm":
        launch_slurm(jobs, out, request.slurm, on_done)
    else:
        launch_local(jobs, request.workers, on_done)
    ordered = []
    for cell in cells:
        record: CellRecord = {**records.get(cell.name, {"name": cell.name})}
        record.pop("ran", None)
        record["axes"] = dict(cell.assignment)
        record["random_init_knn"] = baselines.get(baseline_key(cell))
        ordered.append(record)
    table = build_table(request.spec.to_dict()["axes"], ordered)
    write_table(out, table)
    return table


def _estimate_line(first: Cell, cells: int, at_once: int) -> str:
    """The estimated cost per cell, measured here on the first cell to run (train/estimate.py)."""
    try:
        cost = estimate_run(first.config)
    except (NocollapseError, RuntimeError) as error:  # the cell itself will report it
        return f"estimated cost per cell: not measured ({error})"
    rounds = math.ceil(cells / max(1, at_once))
    return (f"estimated cost per cell (measured here): {cost.line()}; {cells} cells, {at_once} "
            f"at a time: ~{_duration(cost.seconds * rounds)}")


def _notice(line: str) -> None:
    """A line the user must see even with --quiet (a stored figure refused)."""
    print(f"nocollapse sweep: {line}", file=sys.stderr, flush=True)


class Progress:
    """Plain lines: one per finished cell, with the sweep's done / total and an ETA."""

    def __init__(self, total: int, done: int, workers: int, stream: TextIO):
        self.total, self.done, self.workers, self.stream = total, done, workers, stream
        self.start, self.ran = time.monotonic(), 0
        self.cell_seconds: list[float] = []

    def say(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def cell_done(self, record: CellRecord) -> None:
        self.done += 1
        self.ran += 1
        knn = record.get("knn")
        shown = f"k-NN {knn:.3f}" if isinstance(knn, int | float) else "k-NN -"
        left = self.total - self.done
        seconds = record.get("seconds")
        if isinstance(seconds, int | float):
            self.cell_seconds.append(float(seconds))
        # the cells left, run `workers` at a time at the mean duration of those run so far
        # (wall time per finished cell would count the first cells' parallel partners twice)
        mean = (sum(self.cell_seconds) / len(self.cell_seconds) if self.cell_seconds
                else (time.monotonic() - self.start) / self.ran)
        eta = (f"ETA {_duration(mean * math.ceil(left / max(1, self.workers)))}" if left
               else "done")
        took = f"{seconds:.0f} s" if isinstance(seconds, int | float) else "-"
        self.say(f"[{self.done}/{self.total}] {record.get('name')}: {record.get('outcome')}, "
                 f"{shown}, {took}; {eta}")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
