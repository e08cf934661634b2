"""The records of a run directory, key by key: what each file holds, as typed dicts.

Every writer builds these and every reader gets them here (docs/run-directory.md says
the same for users). Files read back may be damaged or written by an older version, so
a reader gets :data:`JSONObject` (what ``json.loads`` returns) and checks what it uses;
only the checkpoint, whose keys are checked on loading, is read back as its record.

No ``from __future__ import annotations`` here: ``typing`` finds ``NotRequired`` only in
evaluated annotations, and :data:`CHECKPOINT_KEYS` is read from them.
"""

import math
from typing import TYPE_CHECKING, Any, NotRequired, TypeAlias, TypedDict, TypeGuard

if TYPE_CHECKING:  # runio itself needs no torch (theory writes run directories without it)
    from torch import Tensor

# A JSON value, as ``json.loads`` returns it.
JSONValue: TypeAlias = (bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"]
                        | None)
JSONObject: TypeAlias = dict[str, JSONValue]
# A configuration as plain values (``TrainConfig.to_dict()``, ``config.yaml``): nested
# mappings of the config's own field types, which only the config reads back typed.
ConfigDict: TypeAlias = dict[str, Any]


def is_finite_number(value: object) -> TypeGuard[int | float]:
    """True for a finite int or float that is not a bool: a record's value a reader may use."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def finite_or_none(value: object) -> float | None:
    """A record's value as a float when it is a finite number, else None."""
    return float(value) if is_finite_number(value) else None


class KnnPoint(TypedDict):
    """A k-NN line of ``metrics.jsonl`` (and an entry of the checkpoint's ``knn_history``)."""

    step: int
    epoch: int
    knn_accuracy: float
    train_seconds: float
    final: NotRequired[bool]  # the standard protocol's headline figure, on the full splits


class TrainLogLine(TypedDict):
    """A training line of ``metrics.jsonl``, as the loop writes it; callbacks (the collapse
    monitor) add their keys to it before it is written."""

    step: int
    epoch: float
    loss: float
    lr: float
    tau: float | None
    images_per_s: float
    threads: int


class WarningLine(TypedDict):
    """A line of ``warnings.jsonl``: one collapse warning."""

    step: int
    message: str
    reasons: list[str]
    collapse_level: float | None
    effective_rank: float | None
    consecutive_logs: int
    likely_causes: list[str]
    # figures quoted beside the causes, not causes (the theory's eta/eta_c): absent in older runs
    figures: NotRequired[list[str]]


class SpectraLine(TypedDict, total=False):
    """A line of ``spectra.jsonl`` (one an epoch); a matrix the learner lacks is absent,
    and ``skipped`` names why."""

    epoch: int
    step: int | None  # the last diagnosed step (None: none yet)
    F_eigenvalues: list[float]
    Wp_eigenvalues: list[float]
    Wp_asymmetry: float
    Wp_in_F_basis: list[float]
    commutator: float
    alignment: list[list[float]]
    Z_eigenvalues: list[float]
    summary: dict[str, float]
    skipped: dict[str, str]


class ProtocolRecord(TypedDict):
    """The standard evaluation's settings (``evaluate.Protocol.key()``)."""

    knn_k: list[int]
    knn_t: float
    probe_epochs: int
    linear: bool
    # eval.protocol=fast: the k-NN bank (and probe set) is this many train images
    bank: NotRequired[int]


class Evaluation(TypedDict):
    """The standard protocol on the full splits (``summary.json``'s ``evaluation``):
    accuracies in [0, 1] of the trained encoder and of each baseline measured."""

    protocol: ProtocolRecord
    train_images: int
    test_images: int
    trained: dict[str, float]
    baselines: dict[str, dict[str, float]]  # the trained keys, and "cached": true/false
    headline: str  # the key of ``trained`` that is the run's k-NN figure
    pending_baselines: NotRequired[dict[str, str]]  # baseline -> the command that measures it


class EvaluationFile(Evaluation):
    """``evaluation.json`` (``nocollapse evaluate``): the evaluation of the last checkpoint."""

    step: int
    epoch: int
    knn_accuracy: float
    linear_accuracy: float | None


class Summary(TypedDict):
    """``summary.json``: how a run ended (training, or ``nocollapse.Monitor``)."""

    step: int | None
    planned_steps: int | None
    epoch: int
    stopped: str
    note: str | None
    knn_accuracy: float | None
    random_knn_accuracy: float | None
    seconds: float
    evaluation: Evaluation | None
    error: NotRequired[str]  # a diverged run's message
    source: NotRequired[str]  # "nocollapse.Monitor" for a user's own loop
    warnings: NotRequired[int]  # the Monitor's count of collapse warnings


class CellRecord(TypedDict, total=False):
    """A sweep cell's outcome (``cells/<name>/outcome.json``) and, with ``axes`` and
    ``random_init_knn``, its row of ``sweep.json`` (``ran``: in memory only); a failed
    cell has ``name``, ``outcome`` and ``error``."""

    name: str
    outcome: str
    error: str
    knn: float | None
    stopped: str
    steps: int | None
    train_seconds: float | None
    collapse_level: float | None
    effective_rank: float | None
    peak_effective_rank: float | None
    sigma2_est: float | None
    tau_est: float | None
    scale_est: float | None
    knn_curve: list[list[float]]
    test_images: int | None
    warning_step: int | None
    warning_reason: str | None
    warning_cause: str | None
    rankme: float | None
    init_rankme: float | None  # the random-init encoder's RankMe on the same images
    alpha_req: float | None
    lidar: float | None
    label_free_seconds: float
    resumed: bool
    seconds: float
    ran: bool
    axes: dict[str, object]  # key -> this cell's value
    random_init_knn: float | None


class SpearmanRecord(TypedDict):
    rho: float | None
    p_value: float | None
    cells: int


class SweepTable(TypedDict):
    """``sweep.json``: the axes (each ``[key, values]``), the cells in grid order, the
    outcome thresholds and each label-free metric's Spearman correlation with the k-NN."""

    axes: list[tuple[str, list[JSONValue]]]  # two-item lists in the file
    cells: list[CellRecord]
    outcome_thresholds: dict[str, float]
    spearman_with_knn: dict[str, SpearmanRecord]


class NumpyRng(TypedDict):
    kind: str
    keys: "Tensor"
    pos: int
    has_gauss: int
    cached: float


class PythonRng(TypedDict):
    version: int
    state: "Tensor"
    gauss_next: float | None


class RngState(TypedDict):
    """Every random state a run consumes, as tensors and plain values (``weights_only``)."""

    torch: "Tensor"
    numpy: NumpyRng
    python: PythonRng
    cuda: NotRequired[list["Tensor"]]
    generator: NotRequired["Tensor"]


class Checkpoint(TypedDict):
    """``checkpoints/last.pt``: the training state (tensors and plain values only)."""

    model: dict[str, "Tensor"]
    optimizer: dict[str, Any]  # torch's Optimizer.state_dict(), whatever the optimiser
    scheduler: dict[str, object]
    rng: RngState
    step: int
    epoch: int
    batch: int  # the next batch within the epoch
    loss_sum: "Tensor"
    window_steps: int
    knn_history: list[KnnPoint]
    random_knn: float | None
    seconds: float
    config: ConfigDict
    # written since later versions (an older checkpoint lacks them)
    monitor_seconds: NotRequired[float]
    predictor_matrix: NotRequired["Tensor | None"]
    F_hat: NotRequired["Tensor | None"]
    callbacks: NotRequired[dict[str, object]]  # Stateful callbacks' states
    finished: NotRequired[bool]  # the run ended (not stopped by its time budget)
    evaluating: NotRequired[bool]  # written before the final evaluation, which it lacks
    # the end, saved with the final checkpoint: a kill before summary.json loses nothing
    stopped: NotRequired[str]
    evaluation: NotRequired[Evaluation | None]


# Every key a training run saves; a file lacking one is not a (complete) checkpoint.
CHECKPOINT_KEYS = Checkpoint.__required_keys__
