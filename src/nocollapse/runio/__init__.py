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
    ``step, epoch, loss, lr, tau, images_per_s, threads`` and, with the monitor, the keys of
    :data:`MONITOR_KEYS`, :data:`ESTIMATE_KEYS` and :data:`SCALE_KEY`
    (``sigma^2``, the theory's ``tau`` and the data scale ``x`` estimated from the run,
    docs/theory.md#theory-in-a-run; ``tau`` itself is the EMA momentum); k-NN lines
    ``step, epoch, knn_accuracy, train_seconds`` (``eval.knn_every`` on the monitor
    subsets; ``final: true`` on the last, the standard protocol's headline figure on the
    full splits). Simulations
    (``simulate``) log ``t, simulated, theory`` (one value per mode) and the model's
    extra series.
``spectra.jsonl`` (:data:`SPECTRA_FILE`)
    Training, one line an epoch: ``epoch, step, F_eigenvalues, Wp_eigenvalues,
    Wp_asymmetry, Wp_in_F_basis, commutator, alignment, Z_eigenvalues, summary``
    (lists descending; ``Wp_in_F_basis``: ``u_j^T Wp u_j`` for ``F_hat``'s eigenvectors
    ``u_j``, in the order of ``F_eigenvalues``; a key is absent when the learner has no
    such matrix, and then ``skipped`` maps the missing predictor keys to the reason).
    ``nocollapse.Monitor`` (a user's own loop) writes the same files, ``config.yaml``
    with ``command: monitor``.
``warnings.jsonl`` (:data:`WARNINGS_FILE`)
    One line per collapse warning: ``step, message, reasons, collapse_level,
    effective_rank, consecutive_logs, likely_causes``.
The records each file holds are typed in :mod:`nocollapse.runio.records`
(:class:`Summary`, :class:`Evaluation`, :class:`EvaluationFile`, :class:`KnnPoint`,
:class:`TrainLogLine`, :class:`SpectraLine`, :class:`Checkpoint`); ``summary.json`` and
``evaluation.json`` are written and read only by the functions here.

``summary.json`` (:data:`SUMMARY_FILE`)
    Written when a training run ends: ``step, planned_steps, epoch, stopped, note``
    (e.g. "stopped by time budget at step N of M", else null), ``knn_accuracy,
    random_knn_accuracy, seconds, evaluation`` and ``error`` when it diverged.
    ``evaluation``: the standard protocol on the full splits, ``{protocol, train_images,
    test_images, headline, trained: {knn_k200, knn_k20, linear_probe}, baselines:
    {raw_pixels | random_init | supervised: {the same keys, cached}}}``.
``evaluation.json`` (:data:`EVALUATION_FILE`)
    Written by ``nocollapse evaluate``: the same ``evaluation`` fields for the last
    checkpoint, plus ``step, epoch, knn_accuracy, linear_accuracy``.
``embedding.npz`` (:data:`EMBEDDING_FILE`)
    Written at the end of a run (and by ``nocollapse evaluate``): a sample of test images'
    l2-normalised features, trained and random-init encoder, as principal-component
    scores, for the report's 2-D map (numpy arrays, read without pickle).
``checkpoints/last.pt`` (:data:`CHECKPOINT_DIR`, :data:`LAST_CHECKPOINT`)
    The training state (``torch.save`` of tensors and plain values only).
``tensorboard/`` (:data:`TENSORBOARD_DIR`)
    Event files, when the optional ``tensorboard`` package is installed.

``.lock`` (:data:`LOCK_FILE`)
    Held (``fcntl.flock``) by the training run writing the directory; holds its pid.

Floats that are not finite are written as ``null`` (NaN) or ``"inf"``/``"-inf"``.

Every file is written with one mode (``0o666`` less the umask, 0644 by default):
whole files by create-temp-then-rename (a symlink in the way is replaced, never
followed), appended JSON lines through ``O_NOFOLLOW``. A write that fails (no
permission, disk full, a file where a folder should be) raises
:class:`~nocollapse.errors.OutputError` naming the path and leaves the previous
file in place.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TypeVar

import yaml

from nocollapse.errors import ConfigError, OutputError
from nocollapse.runio.files import (  # re-exported: callers write through runio
    atomic_write_bytes as atomic_write_bytes,
)
from nocollapse.runio.files import atomic_write_files as atomic_write_files
from nocollapse.runio.files import atomic_write_text as atomic_write_text
from nocollapse.runio.files import check_writable_file as check_writable_file
from nocollapse.runio.files import ensure_dir as ensure_dir
from nocollapse.runio.files import file_mode as file_mode
from nocollapse.runio.files import open_append as open_append
from nocollapse.runio.records import ConfigDict, EvaluationFile, JSONObject, Summary

T = TypeVar("T")

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SPECTRA_FILE = "spectra.jsonl"
WARNINGS_FILE = "warnings.jsonl"
SUMMARY_FILE = "summary.json"
EVALUATION_FILE = "evaluation.json"
EMBEDDING_FILE = "embedding.npz"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.pt"
TENSORBOARD_DIR = "tensorboard"
LOCK_FILE = ".lock"
# A sweep directory (nocollapse.sweep): its spec, its table, cells/<name>/ run directories,
# each with the cell's outcome record once the cell is done, and the shared baseline.
SWEEP_SPEC_FILE = "sweep.yaml"
SWEEP_TABLE_FILE = "sweep.json"
SWEEP_CSV_FILE = "sweep.csv"
SWEEP_BASELINE_FILE = "baseline.json"
SWEEP_CELLS_DIR = "cells"
CELL_OUTCOME_FILE = "outcome.json"
# The files `report` reads; a directory holding none of them is not a run.
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SPECTRA_FILE, WARNINGS_FILE, SUMMARY_FILE)
# The per-log diagnostics the collapse monitor adds to a training line of metrics.jsonl.
MONITOR_KEYS = ("embedding_std", "collapse_level", "effective_rank", "participation_ratio",
                "dims_above", "rankme", "alignment")
ESTIMATE_KEYS = ("sigma2_est", "tau_est")
# the data scale x of eta_c = x tau^2 / (4 (1 + sigma^2)); absent for learners without
# output_layer()/loss_gain() and in runs written before it was measured
SCALE_KEY = "scale_est"
# spectra.jsonl fields that hold a list of numbers, and the one that holds a (d, d) matrix
SPECTRA_VECTOR_KEYS = ("F_eigenvalues", "Wp_eigenvalues", "Z_eigenvalues", "Wp_in_F_basis")
SPECTRA_MATRIX_KEY = "alignment"


def write_config(run_dir: str | Path, config: Mapping[str, object]) -> Path:
    """Write the resolved config of a run as YAML and return its path."""
    path = Path(run_dir) / CONFIG_FILE
    atomic_write_text(path, yaml.safe_dump(_plain(config), sort_keys=False))
    return path


# Deeper YAML than any config needs is refused before PyYAML's recursive composer
# overflows the stack (a file nested 20 000 deep).
MAX_YAML_DEPTH = 64


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases (``*name``: a few hundred bytes can expand
    to gigabytes), duplicate keys (YAML would silently keep the last) and deep nesting."""

    depth = 0

    def compose_node(self, parent: object, index: object) -> object:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, f"an alias (*{str(event.anchor)[:40]}) is not allowed: write the "
                "value out", event.start_mark)
        if self.depth >= MAX_YAML_DEPTH:
            raise yaml.constructor.ConstructorError(
                None, None, f"nested deeper than {MAX_YAML_DEPTH} levels",
                self.peek_event().start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> object:
        seen: set[object] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {quote_short(key)} is given twice (YAML would keep "
                    "only the last); give it once", key_node.start_mark)
            if isinstance(key, str | int | float | bool):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def quote_short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def load_yaml(text: str, what: str) -> object:
    """Parse YAML ``text`` with :class:`_StrictLoader`; ConfigError naming ``what``."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no objects
    except (yaml.YAMLError, RecursionError, ValueError) as error:
        first = " ".join(str(error).split())[:300] or type(error).__name__
        raise ConfigError(f"{what} is not valid YAML: {first}") from None


def read_config(run_dir: str | Path) -> ConfigDict:
    """Read a run's resolved config (empty dict when there is none)."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path} is not a readable YAML file ({type(error).__name__}); "
                          "restore it, or delete it") from error
    loaded = load_yaml(text, str(path))
    return loaded if isinstance(loaded, dict) else {}


def _plain(value: object) -> object:
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


def _json_safe(value: object) -> object:
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
        ensure_dir(self.path.parent)
        self._handle = open_append(self.path, truncate=not append)

    def write(self, record: Mapping[str, object]) -> None:
        try:
            self._handle.write(json.dumps(_json_safe(dict(record))) + "\n")
            self._handle.flush()
        except OSError as error:
            raise OutputError(f"cannot append to {self.path}: {error.strerror or error}"
                              ) from error

    def close(self) -> None:
        self._handle.close()

    def reopen(self) -> None:
        """Append to the file now at ``path`` (after it was rewritten by a rename)."""
        self._handle.close()
        self._handle = open_append(self.path)

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def plain_json(value: T) -> T:
    """``value`` as plain JSON types (dicts, lists, str, float, int, bool, None), as a
    checkpoint read with ``weights_only=True`` may hold them (numpy scalars converted):
    the same record, its numbers as JSON writes them."""
    plain: T = json.loads(json.dumps(_json_safe(value)))
    return plain


def iter_metrics(path: str | Path) -> Iterator[JSONObject]:
    """Yield the JSON objects of a metrics file, one per line.

    Skips what a crash or damage leaves: a truncated last line, a line that is not
    UTF-8 or not JSON, a JSON value that is not an object.
    """
    for _, record in iter_metric_lines(path):
        if record is not None:
            yield record


def iter_metric_lines(path: str | Path) -> Iterator[tuple[bytes, JSONObject | None]]:
    """Every non-blank line of a metrics file (bytes, with its newline) and its record.

    The record is ``None`` for a line that does not hold a JSON object.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    if not path.is_file():
        return
    with open(path, "rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                record = None  # a run killed mid-write leaves a partial last line
            yield line, record if isinstance(record, dict) else None


def read_metrics(path: str | Path) -> list[JSONObject]:
    """All records of a metrics file (see :func:`iter_metrics`)."""
    return list(iter_metrics(path))


def truncate_jsonl(path: str | Path, keep: str, last: int | None,
                   drop_final_before: int | None = None) -> None:
    """Keep only the lines of ``path`` whose ``keep`` value is at most ``last`` (``None``:
    none of the lines holding a number under ``keep``): a resumed run's files, cut back
    to what an uninterrupted run had written at its checkpoint.

    The kept lines stay byte for byte; unreadable lines (a partial last line left by
    a kill) go, and the lines marked ``"final": true`` whose ``keep`` value is below
    ``drop_final_before`` (a finished run's end, superseded by training it longer).
    Lines without the key are kept. Nothing is written when nothing changes.
    """
    path = Path(path)
    if not path.is_file():
        return
    kept, dropped = [], False
    for line, record in iter_metric_lines(path):
        value = None if record is None else record.get(keep)
        after = isinstance(value, int | float) and (last is None or value > last)
        superseded = (drop_final_before is not None and record is not None
                      and record.get("final") is True and isinstance(value, int | float)
                      and value < drop_final_before)
        if record is None or after or superseded:
            dropped = True
            continue
        if not line.endswith(b"\n"):  # a complete record whose newline was cut off
            line, dropped = line + b"\n", True
        kept.append(line)
    if dropped:
        atomic_write_bytes(path, b"".join(kept))


def _write_record(path: Path, record: Mapping[str, object]) -> None:
    atomic_write_text(path, json.dumps(record, indent=2))


def write_summary(run_dir: str | Path, summary: Summary) -> None:
    """``RUN_DIR/summary.json``: how the run ended."""
    _write_record(Path(run_dir) / SUMMARY_FILE, summary)


def write_evaluation(run_dir: str | Path, evaluation: EvaluationFile) -> None:
    """``RUN_DIR/evaluation.json``: ``nocollapse evaluate``'s result."""
    _write_record(Path(run_dir) / EVALUATION_FILE, evaluation)


def read_json_record(path: str | Path) -> JSONObject | None:
    """The JSON object in ``path``; None when it is absent, unreadable or not an object."""
    try:
        loaded = json.loads(Path(path).read_bytes().decode("utf-8"))
    except (OSError, ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return loaded if isinstance(loaded, dict) else None


def read_summary(run_dir: str | Path) -> JSONObject:
    """``RUN_DIR/summary.json`` as it was read (empty when absent or unreadable): a file
    read back is checked key by key by its reader."""
    return read_json_record(Path(run_dir) / SUMMARY_FILE) or {}


def latest_evaluation(run_dir: str | Path) -> JSONObject | None:
    """The run's latest standard evaluation: ``evaluation.json`` (``nocollapse evaluate``)
    when there is one, else ``summary.json``'s; None when neither can be read."""
    found = read_json_record(Path(run_dir) / EVALUATION_FILE)
    if found is not None:
        return found
    evaluation = read_summary(run_dir).get("evaluation")
    return evaluation if isinstance(evaluation, dict) else None
