"""Run directories: the name and schema of every file, and the helpers that write them.

Every command that produces results (simulate, phase, train, reproduce) writes a
run directory through these helpers, and ``report`` reads any of them back. This
module is the one place a reader of a run directory learns its format
(docs/run-directory.md says the same for users):

``config.yaml`` (:data:`CONFIG_FILE`)
    The resolved configuration of the run (training: ``TrainConfig.to_dict()``, its
    ``learner`` section the method preset with the overrides applied).
``metrics.jsonl`` (:data:`METRICS_FILE`)
    One JSON object a line, appended as the run goes. Training log lines carry
    ``step, epoch, loss, lr, tau, images_per_s`` and, with the monitor, the keys of
    :data:`MONITOR_KEYS`; k-NN lines ``step, epoch, knn_accuracy`` (``final: true``
    on the last). Simulations (``simulate``) log ``t, simulated, theory`` (one value per
    mode) and the model's extra series.
``spectra.jsonl`` (:data:`SPECTRA_FILE`)
    Training, one line an epoch: ``epoch, step, F_eigenvalues, Wp_eigenvalues,
    Wp_asymmetry, commutator, alignment, Z_eigenvalues, summary`` (lists descending;
    a key is absent when the learner has no such matrix).
``warnings.jsonl`` (:data:`WARNINGS_FILE`)
    One line per collapse warning: ``step, message, reasons, collapse_level,
    effective_rank, consecutive_logs, likely_causes``.
``summary.json`` (:data:`SUMMARY_FILE`)
    Written when a training run ends: ``step, epoch, stopped, knn_accuracy,
    random_knn_accuracy, seconds`` and ``error`` when it diverged.
``evaluation.json`` (:data:`EVALUATION_FILE`)
    Written by ``nocollapse evaluate``: the frozen-feature k-NN and linear-probe results.
``checkpoints/last.pt`` (:data:`CHECKPOINT_DIR`, :data:`LAST_CHECKPOINT`)
    The training state (``torch.save`` of tensors and plain values only).
``tensorboard/`` (:data:`TENSORBOARD_DIR`)
    Event files, when the optional ``tensorboard`` package is installed.

Floats that are not finite are written as ``null`` (NaN) or ``"inf"``/``"-inf"``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SPECTRA_FILE = "spectra.jsonl"
WARNINGS_FILE = "warnings.jsonl"
SUMMARY_FILE = "summary.json"
EVALUATION_FILE = "evaluation.json"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"
TENSORBOARD_DIR = "tensorboard"
# The files `report` reads; a directory holding none of them is not a run.
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SPECTRA_FILE, WARNINGS_FILE, SUMMARY_FILE)
# The per-log diagnostics the collapse monitor adds to a training line of metrics.jsonl.
MONITOR_KEYS = ("embedding_std", "collapse_level", "effective_rank", "participation_ratio",
                "dims_above", "alignment")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    A reader (or a crash) never sees a half-written file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text version of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_config(run_dir: str | Path, config: Mapping[str, Any]) -> Path:
    """Write the resolved config of a run as YAML and return its path."""
    path = Path(run_dir) / CONFIG_FILE
    atomic_write_text(path, yaml.safe_dump(_plain(config), sort_keys=False))
    return path


def read_config(run_dir: str | Path) -> dict[str, Any]:
    """Read a run's resolved config (empty dict when there is none)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text()) or {}


def _plain(value: Any) -> Any:
    """Convert tuples, numpy scalars and paths into YAML/JSON-safe values."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):
        try:
            return value.item()
        except (ValueError, TypeError):
            pass
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _json_safe(value: Any) -> Any:
    value = _plain(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


class MetricsWriter:
    """Appends one JSON object per line to ``metrics.jsonl``, flushed at each write.

    Appending (not rewriting) keeps a run's history readable while it is still
    running and after it crashed.
    """

    def __init__(self, run_dir: str | Path, filename: str = METRICS_FILE, append: bool = True):
        self.path = Path(run_dir) / filename
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self.path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115

    def write(self, record: Mapping[str, Any]) -> None:
        self._handle.write(json.dumps(_json_safe(dict(record))) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_metrics(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the records of a metrics file, skipping a truncated last line."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.exists():
        return
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue  # a run killed mid-write leaves a partial last line


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All records of a metrics file (see :func:`iter_metrics`)."""
    return list(iter_metrics(path))
