"""What a run reports: :class:`TrainResult`, the loop's counters and ``summary.json``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from nocollapse.rundir.resume import ALREADY_FINISHED
from nocollapse.runio import read_summary
from nocollapse.runio import write_summary as write_summary_record
from nocollapse.runio.records import Checkpoint, Evaluation, JSONValue, KnnPoint, Summary


@dataclass
class TrainResult:
    """What a finished (or budget-stopped) run reports; the run directory holds the rest."""

    run_dir: Path
    step: int
    epoch: int
    stopped: str  # "completed", "max_steps", "time_budget" or resume.ALREADY_FINISHED
    knn_accuracy: float | None = None
    random_knn_accuracy: float | None = None
    knn_history: list[KnnPoint] = field(default_factory=list)
    seconds: float = 0.0
    planned_steps: int = 0
    # The standard protocol on full splits with baselines (see train.final_eval); None
    # without a labelled test split.
    evaluation: Evaluation | None = None
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
    knn_history: list[KnnPoint] = field(default_factory=list)
    random_knn: float | None = None
    seconds: float = 0.0
    monitor_seconds: float = 0.0  # spent in k-NN monitoring, left out of the curve's time


def already_finished_result(run_dir: Path, saved: Checkpoint) -> TrainResult:
    """The result of a finished run, read back from its checkpoint ``saved`` and summary."""
    history = list(saved.get("knn_history") or [])
    summary = read_summary(run_dir)
    random_init = summary.get("random_knn_accuracy", saved.get("random_knn"))
    planned = summary.get("planned_steps")
    evaluation, note = summary.get("evaluation"), summary.get("note")
    return TrainResult(run_dir, saved["step"], saved["epoch"], ALREADY_FINISHED,
                       final_knn(history), _number(random_init), history,
                       saved.get("seconds", 0.0),
                       int(_number(planned) or saved["step"]),
                       # as the run wrote it (the report checks a summary read back)
                       cast(Evaluation, evaluation) if isinstance(evaluation, dict) else None,
                       note if isinstance(note, str) else None)


def final_knn(history: list[KnnPoint]) -> float | None:
    """The k-NN figure of the curve's final point (the standard protocol's headline)."""
    final = [point.get("knn_accuracy") for point in history if point.get("final")]
    return final[-1] if final else None


def _number(value: JSONValue | None) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def write_summary(run_dir: Path, state: RunState, total: int, stopped: str,
                  knn: float | None, error: str | None = None,
                  evaluation: Evaluation | None = None) -> None:
    """``summary.json`` (:class:`~nocollapse.runio.records.Summary`): how the run ended."""
    summary: Summary = {
        "step": state.step, "planned_steps": total, "epoch": state.epoch,
        "stopped": stopped, "note": stop_note(stopped, state.step, total),
        "knn_accuracy": knn, "random_knn_accuracy": random_knn(state, evaluation),
        "seconds": round(state.seconds, 2), "evaluation": evaluation}
    if error:
        summary["error"] = error
    write_summary_record(run_dir, summary)


def stop_note(stopped: str, step: int, planned: int) -> str | None:
    """What a reader must know beside the figures of a run that did not finish its plan."""
    if stopped == "time_budget":
        return f"stopped by time budget at step {step} of {planned}"
    if stopped == "max_steps" and step < planned:
        return f"stopped by max_steps at step {step} of {planned}"
    if stopped == "collapse":
        return f"stopped by the collapse warning (--stop-on-collapse) at step {step} of {planned}"
    return None


def random_knn(state: RunState, evaluation: Evaluation | None) -> float | None:
    """The random-init k-NN: the standard protocol's baseline when measured, else the monitor's."""
    random_init = evaluation["baselines"].get("random_init") if evaluation else None
    if random_init and evaluation:
        return float(random_init[evaluation["headline"]])
    return state.random_knn


def summary_from_checkpoint(run_dir: Path, saved: Checkpoint, total: int) -> None:
    """Write ``summary.json`` of a finished run again from its final checkpoint ``saved``."""
    history = [r for r in saved.get("knn_history") or [] if isinstance(r, dict)]
    state = RunState(step=saved["step"], epoch=saved["epoch"], knn_history=history,
                     random_knn=saved.get("random_knn"), seconds=float(saved.get("seconds", 0)))
    evaluation = saved.get("evaluation")
    write_summary(run_dir, state, total, str(saved.get("stopped") or "completed"),
                  final_knn(history),
                  evaluation=evaluation if isinstance(evaluation, dict) else None)
