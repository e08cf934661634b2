"""A finished cell's outcome: what its run directory says, and its class by label-free thresholds.

Classes (docs/sweep.md#outcome-classes), decided without labels, from the collapse
monitor's logs of the projector outputs (the median of the last :data:`FINAL_LOGS`):

- ``diverged``: the loss became NaN or infinite (the run stopped);
- ``complete collapse``: collapse level above :data:`COMPLETE_LEVEL` or effective rank
  below :data:`COMPLETE_RANK` (the monitor's default thresholds: one direction left);
- ``dimensional collapse``: effective rank below :data:`RANK_DROP` times the highest
  effective rank the run logged (the monitor's ``rank_drop``: a few directions left);
- ``learned``: none of these, and a label-free figure beats the random-init encoder's:
  the final backbone features' RankMe above the random-init encoder's on the same images
  (:func:`refine_outcome`, once the cell's label-free metrics are measured);
- ``not collapsed``: none of the collapses, but nothing label-free says it learned (a
  cell whose k-NN is below the random-init encoder's was classed "learned" before).

The final k-NN (full splits) sits beside the class in the table to check it, never
decides it.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from nocollapse.monitor import MonitorConfig
from nocollapse.runio import (
    ESTIMATE_KEYS,
    METRICS_FILE,
    SCALE_KEY,
    WARNINGS_FILE,
    iter_metrics,
    read_summary,
)
from nocollapse.runio.records import (
    CellRecord,
    JSONObject,
    JSONValue,
    finite_or_none,
    is_finite_number,
)

OUTCOMES = ("learned", "not collapsed", "dimensional collapse", "complete collapse",
            "diverged")
HEALTHY = frozenset({"learned", "not collapsed"})  # the classes that are no collapse
_MONITOR = MonitorConfig()
COMPLETE_LEVEL = _MONITOR.collapse_threshold  # 0.8
COMPLETE_RANK = _MONITOR.min_effective_rank  # 1.5
RANK_DROP = _MONITOR.rank_drop  # 0.25
FINAL_LOGS = 3  # monitor logs whose median is the cell's final collapse level / rank
ESTIMATE_LOGS = 10  # logs whose median sigma2 / tau the phase diagram uses (the monitor's)
# the keys :func:`read_cell` fills: an outcome record holding them all needs no rereading
RUN_DIR_FIGURES = frozenset({
    "knn", "stopped", "steps", "train_seconds", "collapse_level", "effective_rank",
    "peak_effective_rank", "sigma2_est", "tau_est", "scale_est", "knn_curve", "test_images",
    "warning_step", "warning_reason", "warning_cause", "outcome"})


def classify(diverged: bool, collapse_level: float | None, effective_rank: float | None,
             peak_rank: float | None) -> str:
    """The outcome class from label-free figures (see the module's docstring)."""
    if diverged:
        return "diverged"
    if collapse_level is not None and collapse_level > COMPLETE_LEVEL:
        return "complete collapse"
    if effective_rank is not None and effective_rank < COMPLETE_RANK:
        return "complete collapse"
    if (effective_rank is not None and peak_rank is not None
            and effective_rank < RANK_DROP * peak_rank):
        return "dimensional collapse"
    return "not collapsed"


def refine_outcome(record: CellRecord) -> str | None:
    """``learned`` for a ``not collapsed`` cell whose backbone RankMe beats the random-init
    encoder's (``rankme`` > ``init_rankme``, the same images); otherwise its class as is."""
    outcome = record.get("outcome")
    rankme, init = record.get("rankme"), record.get("init_rankme")
    if (outcome == "not collapsed" and is_finite_number(rankme) and is_finite_number(init)
            and float(rankme) > float(init)):
        return "learned"
    return None if outcome is None else str(outcome)


def read_cell(run_dir: Path) -> CellRecord:
    """The figures of a cell's run directory: final k-NN, collapse, estimates, first warning."""
    records = list(iter_metrics(run_dir / METRICS_FILE)) if (run_dir / METRICS_FILE).is_file() \
        else []
    logs = [r for r in records if is_finite_number(r.get("effective_rank"))]
    tail = logs[-FINAL_LOGS:]
    level = _median([r.get("collapse_level") for r in tail])
    rank = _median([r.get("effective_rank") for r in tail])
    peak = max((float(value) for r in logs if is_finite_number(value := r.get("effective_rank"))),
               default=None)
    estimates = [r for r in records if all(is_finite_number(r.get(k)) for k in ESTIMATE_KEYS)]
    recent = estimates[-ESTIMATE_LOGS:]
    curve = [[int(_step(r["step"])), float(knn)] for r in records
             if is_finite_number(knn := r.get("knn_accuracy")) and not r.get("final")
             and is_finite_number(r.get("step"))]
    summary = read_summary(run_dir)
    stopped = str(summary.get("stopped") or "")
    evaluation = summary.get("evaluation")
    warning = _first_warning(run_dir / WARNINGS_FILE)
    reasons, causes = warning.get("reasons"), warning.get("likely_causes")
    return {
        "knn": finite_or_none(summary.get("knn_accuracy")),
        "stopped": stopped,
        "steps": _int_or_none(summary.get("step")),
        "train_seconds": finite_or_none(summary.get("seconds")),
        "collapse_level": level,
        "effective_rank": rank,
        "peak_effective_rank": peak,
        "sigma2_est": _median([r["sigma2_est"] for r in recent]),
        "tau_est": _median([r["tau_est"] for r in recent]),
        # the data's scale x of eta_c = x tau^2 / (4 (1 + sigma^2)); None when not logged
        "scale_est": _median([r.get(SCALE_KEY) for r in recent]),
        "knn_curve": curve,
        # the final k-NN's test split size: its binomial standard error (realdata-phase)
        "test_images": (_int_or_none(evaluation.get("test_images"))
                        if isinstance(evaluation, dict) else None),
        "warning_step": _int_or_none(warning.get("step")),
        "warning_reason": _first_text(reasons),
        "warning_cause": _first_text(causes),
        "outcome": classify(stopped.startswith("diverged"), level, rank, peak),
    }


def _first_warning(path: Path) -> JSONObject:
    if not path.is_file():
        return {}
    return next(iter(iter_metrics(path)), {})


def _step(value: JSONValue) -> float:
    """A k-NN line's step (a line without a number there is not one nocollapse wrote)."""
    if not isinstance(value, int | float):
        raise TypeError(f"step {value!r} is not a number")
    return value


def _int_or_none(value: JSONValue | None) -> int | None:
    return int(value) if is_finite_number(value) else None


def _first_text(values: JSONValue | None) -> str | None:
    """The first of a warning's reasons (or causes), as written."""
    first = values[0] if isinstance(values, list) and values else None
    return None if first is None else str(first)


def _median(values: list[JSONValue]) -> float | None:
    numbers = [float(v) for v in values if is_finite_number(v)]
    return statistics.median(numbers) if numbers else None
