"""What a run reports: :class:`TrainResult`, the loop's counters and ``summary.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nocollapse.runio import SUMMARY_FILE, atomic_write_text
from nocollapse.train.final_eval import stop_note
from nocollapse.train.resume import ALREADY_FINISHED


@dataclass
class TrainResult:
    """What a finished (or budget-stopped) run reports; the run directory holds the rest."""

    run_dir: Path
    step: int
    epoch: int
    stopped: str  # "completed", "max_steps", "time_budget" or resume.ALREADY_FINISHED
    knn_accuracy: float | None = None
    random_knn_accuracy: float | None = None
    knn_history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    planned_steps: int = 0
    # The standard protocol on full splits with baselines (see train.final_eval); None
    # without a labelled test split.
    evaluation: dict[str, Any] | None = None
    note: str | None = None  # e.g. "stopped by time budget at step N of M"
    # a finished run's summary.json, lost to a kill after its final checkpoint, rewritten
    summary_restored: bool = False
    # an already finished run: the options that train it one epoch longer
    extend_hint: str | None = None


@dataclass
class RunState:
    """The loop's counters and k-NN curve: what a checkpoint saves and a resume restores."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # next batch index within the epoch
    window_steps: int = 0
    knn_history: list[dict[str, Any]] = field(default_factory=list)
    random_knn: float | None = None
    seconds: float = 0.0
    monitor_seconds: float = 0.0  # spent in k-NN monitoring, left out of the curve's time


def already_finished_result(run_dir: Path, saved: dict[str, Any]) -> TrainResult:
    """The result of a finished run, read back from its checkpoint ``saved`` and summary."""
    history = list(saved.get("knn_history") or [])
    final = [r.get("knn_accuracy") for r in history if r.get("final")]
    summary = read_summary(run_dir)
    return TrainResult(run_dir, saved["step"], saved["epoch"],
                       ALREADY_FINISHED, final[-1] if final else None,
                       summary.get("random_knn_accuracy", saved.get("random_knn")), history,
                       saved.get("seconds", 0.0),
                       int(summary.get("planned_steps") or saved["step"]),
                       summary.get("evaluation"), summary.get("note"))


def write_summary(run_dir: Path, state: RunState, total: int, stopped: str,
                  knn: float | None, error: str | None = None,
                  evaluation: dict[str, Any] | None = None) -> None:
    """``summary.json`` (schema in :mod:`nocollapse.runio`): how the run ended."""
    summary: dict[str, Any] = {
        "step": state.step, "planned_steps": total, "epoch": state.epoch,
        "stopped": stopped, "note": stop_note(stopped, state.step, total),
        "knn_accuracy": knn, "random_knn_accuracy": random_knn(state, evaluation),
        "seconds": round(state.seconds, 2), "evaluation": evaluation}
    if error:
        summary["error"] = error
    atomic_write_text(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2))


def random_knn(state: RunState, evaluation: dict[str, Any] | None) -> float | None:
    """The random-init k-NN: the standard protocol's baseline when measured, else the monitor's."""
    random_init = (evaluation or {}).get("baselines", {}).get("random_init")
    if random_init and evaluation:
        return float(random_init[evaluation["headline"]])
    return state.random_knn


def read_summary(run_dir: Path) -> dict[str, Any]:
    """The run's ``summary.json`` as a dict; empty when absent or unreadable."""
    try:
        summary = json.loads((run_dir / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def summary_from_checkpoint(run_dir: Path, saved: dict[str, Any], total: int) -> None:
    """Write ``summary.json`` of a finished run again from its final checkpoint ``saved``."""
    history = [r for r in saved.get("knn_history") or [] if isinstance(r, dict)]
    final = [r.get("knn_accuracy") for r in history if r.get("final")]
    state = RunState(step=saved["step"], epoch=saved["epoch"], knn_history=history,
                     random_knn=saved.get("random_knn"), seconds=float(saved.get("seconds", 0)))
    evaluation = saved.get("evaluation")
    write_summary(run_dir, state, total, str(saved.get("stopped") or "completed"),
                  final[-1] if final else None,
                  evaluation=evaluation if isinstance(evaluation, dict) else None)
