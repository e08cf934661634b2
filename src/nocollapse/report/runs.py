"""Read a run directory (training or simulation) back into memory, tolerating damage.

A run directory may be complete, still being written, or left behind by a crash:
every file is optional, a truncated last JSON line is skipped, and what is missing
becomes a note in the report instead of an error. Only a directory that does not
exist, or holds none of the files a run writes, is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeGuard, cast

from nocollapse.errors import ConfigError, NocollapseError
from nocollapse.runio import (
    CONFIG_FILE,
    ESTIMATE_KEYS,
    METRICS_FILE,
    MONITOR_KEYS,
    RUN_FILES,
    SPECTRA_FILE,
    SPECTRA_MATRIX_KEY,
    SPECTRA_VECTOR_KEYS,
    SUMMARY_FILE,
    WARNINGS_FILE,
    iter_metric_lines,
    load_yaml,
    read_json_record,
)
from nocollapse.runio.records import (
    ConfigDict,
    Evaluation,
    JSONObject,
    JSONValue,
    is_finite_number,
)

# How each baseline is named: short in figure legends, long in tables (`nocollapse
# evaluate`, train's final table); the two maps side by side, in this one place.
BASELINE_LABELS = {"raw_pixels": "raw pixels", "random_init": "random init",
                   "supervised": "supervised"}
BASELINE_LONG_LABELS = {"raw_pixels": "raw pixels", "random_init": "random init (same backbone)",
                        "supervised": "supervised (same backbone, labels)"}

__all__ = ["CONFIG_FILE", "METRICS_FILE", "RUN_FILES", "SPECTRA_FILE", "SUMMARY_FILE",
           "WARNINGS_FILE", "Run", "load_run", "metric_key", "series"]

# The metrics a report plots, each under the key nocollapse writes (runio's schema).
METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "loss": ("loss",),
    "knn_accuracy": ("knn_accuracy",),
    "collapse_level": ("collapse_level",),
    "effective_rank": ("effective_rank",),
}
X_KEYS = ("t", "step", "epoch")  # a simulation logs both t and its step count


@dataclass
class Run:
    """Everything ``report`` knows about one run directory.

    ``metrics``: one dict per logged step (training) or time point (simulation);
    ``spectra``: one dict per epoch with eigenvalue lists (training only);
    ``summary``: ``summary.json`` of a finished training run (empty while it runs or
    after a crash); ``notes``: human-readable remarks about missing or damaged files.
    """

    path: Path
    label: str
    kind: str  # "training" or "simulation"
    config: ConfigDict
    metrics: list[JSONObject]
    spectra: list[JSONObject]
    warnings: list[JSONObject]
    summary: JSONObject = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """How the run ended: the loop's ``stopped`` value, or 'unfinished'."""
        if self.kind == "simulation":
            return "simulation"
        return str(self.summary.get("stopped", "unfinished (running or crashed)"))

    @property
    def evaluation(self) -> Evaluation | None:
        """``summary.json``'s evaluation, in its schema's shape (checked on loading)."""
        found = self.summary.get("evaluation")
        return cast(Evaluation, found) if isinstance(found, dict) else None


def load_run(path: str | Path, label: str | None = None) -> Run:
    """Load the run directory at ``path``.

    Raises :class:`NocollapseError` when ``path`` is not a directory or contains none
    of ``config.yaml``, ``metrics.jsonl``, ``spectra.jsonl``, ``warnings.jsonl``.
    """
    path = Path(path)
    if not path.is_dir():
        raise NocollapseError(
            f"run directory {str(path)!r} does not exist or is not a directory; "
            "pass a directory written by `nocollapse train` or `nocollapse simulate`"
        )
    if not any((path / name).exists() for name in RUN_FILES):
        raise NocollapseError(
            f"run directory {str(path)!r} holds no run files (expected at least one of "
            f"{', '.join(RUN_FILES)}); is the run still starting, or is this the wrong path?"
        )
    notes: list[str] = []
    config = _read_config(path, notes)
    metrics = _checked_scalars(_read_jsonl(path / METRICS_FILE, notes), METRICS_FILE, notes)
    spectra = _checked_spectra(_checked_scalars(
        _read_jsonl(path / SPECTRA_FILE, notes, required=False), SPECTRA_FILE, notes,
        SPECTRA_SCALAR_KEYS), notes)
    warnings = _checked_scalars(_read_jsonl(path / WARNINGS_FILE, notes, required=False),
                                WARNINGS_FILE, notes)
    summary = _checked_summary(_read_summary(path, notes), notes)
    kind = "simulation" if any("simulated" in r or "theory" in r for r in metrics) else "training"
    label = label or path.resolve().name
    return Run(path, label, kind, config, metrics, spectra, warnings, summary, notes)


def _read_summary(path: Path, notes: list[str]) -> JSONObject:
    if not (path / SUMMARY_FILE).exists():
        return {}
    summary = read_json_record(path / SUMMARY_FILE)
    if summary is None:
        notes.append(f"{SUMMARY_FILE} could not be read")
    return summary or {}


def _read_config(path: Path, notes: list[str]) -> ConfigDict:
    file = path / CONFIG_FILE
    if not file.exists():
        notes.append(f"{CONFIG_FILE} is missing")
        return {}
    try:
        loaded = load_yaml(file.read_text(encoding="utf-8"), CONFIG_FILE)
    except (ConfigError, UnicodeDecodeError) as error:
        notes.append(f"{CONFIG_FILE} could not be read ({type(error).__name__})")
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _read_jsonl(file: Path, notes: list[str], required: bool = True) -> list[JSONObject]:
    if not file.exists():
        if required:
            notes.append(f"{file.name} is missing")
        return []
    lines = list(iter_metric_lines(file))
    records = [record for _, record in lines if record is not None]
    if len(lines) > len(records):
        notes.append(
            f"{file.name}: {len(lines) - len(records)} unreadable line(s) skipped "
            "(a run still writing or killed mid-write)"
        )
    return records


# Keys the run format writes as one number; a hand-edited value of another type (or too
# large to plot) is dropped, so every figure sees numbers or nothing.
SCALAR_KEYS = frozenset({
    "step", "epoch", "t", "loss", "lr", "tau", "knn_accuracy", "train_seconds",
    "images_per_s", "threads", *MONITOR_KEYS, *ESTIMATE_KEYS, "eta_ratio", "x", "commutator",
    "seconds", "planned_steps", "random_knn_accuracy"})
# in spectra.jsonl "alignment" is the eigen-alignment matrix, checked by _checked_spectra
SPECTRA_SCALAR_KEYS = SCALAR_KEYS - {SPECTRA_MATRIX_KEY, *SPECTRA_VECTOR_KEYS}
PLOTTABLE = 1e300  # beyond this a figure's axis range overflows


def _plottable(value: object) -> bool:
    return is_finite_number(value) and abs(value) <= PLOTTABLE


def _checked_scalars(records: list[JSONObject], name: str, notes: list[str],
                     keys: frozenset[str] = SCALAR_KEYS) -> list[JSONObject]:
    """Drop the scalar fields (``keys``) that are not plottable numbers."""
    dropped = 0
    for record in records:
        for key in [k for k in record if k in keys and not _plottable(record[k])]:
            if record[key] is None and key in ("tau", "knn_accuracy", "random_knn_accuracy"):
                continue  # written as null on purpose (no target EMA, no labels)
            del record[key]
            dropped += 1
    if dropped:
        notes.append(f"{name}: {dropped} field(s) that are not numbers skipped")
    return records


def _checked_summary(summary: JSONObject, notes: list[str]) -> JSONObject:
    """``summary.json`` with its numbers and its evaluation in their schema's shape."""
    _checked_scalars([summary], SUMMARY_FILE, notes)
    evaluation = summary.get("evaluation")
    if evaluation is None:
        return summary
    headline = evaluation.get("headline") if isinstance(evaluation, dict) else None
    trained = evaluation.get("trained") if isinstance(evaluation, dict) else None
    if (not isinstance(headline, str) or not isinstance(trained, dict)
            or not _plottable(trained.get(headline))):
        notes.append(f"{SUMMARY_FILE}: its evaluation is damaged and was skipped")
        del summary["evaluation"]
        return summary
    assert isinstance(evaluation, dict)
    for key in [k for k, v in trained.items() if not _plottable(v)]:
        del trained[key]
    baselines = evaluation.get("baselines")
    if not isinstance(baselines, dict) or not all(
            isinstance(values, dict) and _plottable(values.get(headline))
            for values in baselines.values()):
        evaluation["baselines"] = {}
    return summary


def _checked_spectra(records: list[JSONObject], notes: list[str]) -> list[JSONObject]:
    """Drop the fields of ``spectra.jsonl`` lines that do not have their schema's shape
    (a list of numbers; a square list of lists for the alignment), noting how many."""
    dropped = 0
    for record in records:
        for key in SPECTRA_VECTOR_KEYS:
            if key in record and not is_number_list(record[key]):
                del record[key]
                dropped += 1
        rows = record.get(SPECTRA_MATRIX_KEY)
        if rows is not None and not (isinstance(rows, list) and rows and all(
                is_number_list(row) and len(row) == len(rows) for row in rows)):
            del record[SPECTRA_MATRIX_KEY]
            dropped += 1
    if dropped:
        notes.append(f"{SPECTRA_FILE}: {dropped} field(s) that are not lists of numbers skipped")
    return records


def is_number_list(value: object) -> TypeGuard[list[int | float]]:
    """A JSON list of plottable numbers (booleans excluded): a spectra vector's shape."""
    return isinstance(value, list) and all(_plottable(v) for v in value)


# folder names that say nothing about a run: Lightning's logger and version folders, the
# callback's own folder, the usual parent of run directories
GENERIC_FOLDERS = re.compile(r"(version_\d+|lightning_logs|nocollapse(_\d+)?|runs|checkpoints)")


def label_runs(paths: list[Path], names: list[str | None] | None = None) -> list[str]:
    """Short unique labels for runs: the run's ``name`` (config.yaml) when it has one, else
    the fewest trailing folder names that tell the runs apart, skipping folder names
    that say nothing (``version_0``, ``lightning_logs``, ``nocollapse``: a Lightning
    callback's run ``exp-a/lightning_logs/version_0/nocollapse`` is ``exp-a``), with them
    when only they differ."""
    parts = [[part for part in reversed(p.resolve().parts[1:])] for p in paths]
    meaningful = [[part for part in found if not GENERIC_FOLDERS.fullmatch(part)]
                  for found in parts]
    common = 0  # trailing folder names every run shares (each run's own "nocollapse")
    while all(len(found) > common + 1 for found in parts) and \
            len({found[common] for found in parts}) == 1 and len(parts) > 1:
        common += 1
    labels = _shortest_unique(meaningful) or \
        _shortest_unique([found[common:] for found in parts]) or \
        [p.resolve().name for p in paths]
    labels = [name or label for name, label in zip(names or [None] * len(paths), labels,
                                                   strict=True)]
    seen: dict[str, int] = {}
    unique = []
    for name in labels:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique


def _shortest_unique(reversed_parts: list[list[str]]) -> list[str] | None:
    """The last ``k`` parts joined by ``-`` (labels name figure files), for the smallest
    ``k`` that makes every label distinct and none empty; None when no ``k`` does."""
    longest = max((len(found) for found in reversed_parts), default=0)
    for k in range(1, longest + 1):
        labels = ["-".join(reversed(found[:k])) for found in reversed_parts]
        if all(labels) and len(set(labels)) == len(labels):
            return labels
    return None


def metric_key(run: Run, metric: str) -> str | None:
    """The key under which ``metric`` (a name of ``METRIC_KEYS``) is logged in ``run``."""
    for key in METRIC_KEYS.get(metric, (metric,)):
        if any(is_finite_number(r.get(key)) for r in run.metrics):
            return key
    return None


def series(records: list[JSONObject], key: str) -> tuple[list[float], list[float], str]:
    """Points ``(x, y)`` of a scalar ``key`` over ``records``, and the name of the x axis.

    The x axis is ``step`` (training), ``t`` (simulation) or ``epoch``, whichever the
    records carry; records without a finite value of ``key`` are skipped.
    """
    x_key = next((k for k in X_KEYS if any(k in r for r in records)), None)
    xs: list[float] = []
    ys: list[float] = []
    for index, record in enumerate(records):
        value = record.get(key)
        if not is_finite_number(value):
            continue
        x = record.get(x_key, index) if x_key else index
        xs.append(float(x) if is_finite_number(x) else float(index))
        ys.append(float(value))
    return xs, ys, x_key or "record"


def final_value(run: Run, metric: str) -> float | None:
    """Last finite value of ``metric`` in ``run`` (``None`` when never logged)."""
    key = metric_key(run, metric)
    if key is None:
        return None
    _, ys, _ = series(run.metrics, key)
    return ys[-1] if ys else None


def number(value: JSONValue | None, default: float) -> float:
    """A record's value as a float; ``default`` when it is not a finite number."""
    return float(value) if is_finite_number(value) else default


def record_epoch(record: JSONObject, default: int) -> int:
    """A record's ``epoch`` as a whole number (``default`` when it has none)."""
    value = record.get("epoch")
    return int(value) if is_finite_number(value) else default
