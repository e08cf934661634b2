"""``CollapseMonitor``: collapse diagnostics during training, spectra per epoch, early warning.

A training-loop callback (see :mod:`nocollapse.train`):

- ``on_log`` every ``MonitorConfig.every`` steps adds cheap scalars to the metrics
  record (``embedding_std``, ``collapse_level``, ``effective_rank``,
  ``participation_ratio``, ``dims_above``, ``alignment``; same names and formulas as
  :func:`nocollapse.diagnostics.summarize`), computed on the embeddings' device from
  one eigendecomposition of the smaller Gram matrix of the ``(2B, d)`` batch, so the
  cost is ``O(B d min(B, d) + min(B, d)^3)`` and only ``min(2B, d)`` numbers leave the GPU;
- ``on_epoch_end`` appends one line to ``spectra.jsonl``: eigenvalues of ``F_hat``,
  of the symmetric part of ``Wp`` and of the batch correlation, the alignment matrix
  ``|u_i^T v_j|`` (for ``d <= alignment_max_dim``) and the full ``summarize`` dict;
- the run's ``sigma2_est`` (augmentation over data variance of the embeddings) and
  ``tau_est`` (target/online ratio at the EMA's steady state) go into the same record
  and, as medians of the last ``ESTIMATE_WINDOW`` logs, into the early warning's
  context, so its weight-decay cause names ``eta / eta_c``
  (docs/theory.md#theory-in-a-run);
- the early warning (:mod:`nocollapse.train.warnings`) prints a rich panel, appends
  to ``warnings.jsonl`` and, with ``stop_on_collapse``, raises :class:`CollapseDetected`;
- the same scalars go to TensorBoard when ``torch.utils.tensorboard`` and the
  ``tensorboard`` package import (the optional ``tensorboard`` extra); otherwise nothing.

``spectra.jsonl`` line: ``{"epoch", "step", "F_eigenvalues", "Wp_eigenvalues",
"Wp_asymmetry", "Wp_in_F_basis", "commutator", "Z_eigenvalues", "alignment",
"summary"}``; lists descending (``Wp_in_F_basis``: ``u_j^T Wp u_j`` in the order of
``F_eigenvalues``), keys absent when the learner has no such matrix.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from rich.console import Console
from rich.panel import Panel

from nocollapse import diagnostics
from nocollapse.errors import check_in_range, check_nonnegative, check_positive
from nocollapse.methods import Learner, StepOutput
from nocollapse.runio import (
    ESTIMATE_KEYS,
    SPECTRA_FILE,
    TENSORBOARD_DIR,
    WARNINGS_FILE,
    MetricsWriter,
)
from nocollapse.train.warnings import CollapseDetected, EarlyWarning

if TYPE_CHECKING:  # config.py imports MonitorConfig from here
    from torch.utils.tensorboard import SummaryWriter

    from nocollapse.train.config import TrainConfig

ESTIMATE_WINDOW = 10  # logs whose median sigma2 / tau estimates the warning quotes
__all__ = [
    "SPECTRA_FILE",
    "CollapseDetected",
    "CollapseMonitor",
    "MonitorConfig",
    "fast_scalars",
    "run_context",
]


@dataclass
class MonitorConfig:
    """Options of :class:`CollapseMonitor` (the ``monitor`` section of a training config).

    ``every``: steps between diagnostics (0 disables the per-step scalars);
    ``collapse_threshold`` in [0, 1] and ``min_effective_rank`` >= 0 define a suspect
    log; ``patience``: consecutive suspect logs before the warning (K);
    ``stop_on_collapse``: raise :class:`CollapseDetected` after the warning;
    ``spectra``: write ``spectra.jsonl`` per epoch; ``alignment_max_dim``: save the
    ``(d, d)`` alignment matrix only up to this ``d`` (it is ``d^2`` numbers per epoch);
    ``tensorboard``: also write event files when the package is installed.
    """

    enabled: bool = True
    every: int = 20
    collapse_threshold: float = 0.8
    min_effective_rank: float = 1.5
    patience: int = 3
    stop_on_collapse: bool = False
    spectra: bool = True
    alignment_max_dim: int = 128
    tensorboard: bool = True

    def validate(self) -> MonitorConfig:
        check_nonnegative("monitor.every", self.every)
        check_in_range("monitor.collapse_threshold", self.collapse_threshold, 0.0, 1.0)
        check_nonnegative("monitor.min_effective_rank", self.min_effective_rank)
        check_positive("monitor.patience", self.patience)
        check_nonnegative("monitor.alignment_max_dim", self.alignment_max_dim)
        return self


@torch.no_grad()
def fast_scalars(z1: torch.Tensor, z2: torch.Tensor | None = None) -> dict[str, float]:
    """The cheap subset of :func:`nocollapse.diagnostics.summarize`, on ``z``'s device.

    ``z1, z2``: ``(B, d)``. One :func:`covariance_eigenvalues` of the stacked ``(2B, d)``
    batch feeds every spectral scalar; the scalar formulas are the diagnostics'.
    """
    z = (z1 if z2 is None else torch.cat([z1, z2])).detach().float()
    d = z.shape[1]
    normalized = torch.nn.functional.normalize(z, dim=1)
    std = normalized.std(dim=0, correction=0).mean()
    eigenvalues = covariance_eigenvalues(z)
    singular = np.sqrt(eigenvalues)  # of the centred batch / sqrt(n): effective_rank is scale-free
    out = {
        "embedding_std": float(std),
        "collapse_level": max(0.0, 1.0 - math.sqrt(d) * float(std)),
        "effective_rank": diagnostics.effective_rank(singular),
        "participation_ratio": diagnostics.participation_ratio(eigenvalues),
        "dims_above": float(diagnostics.dims_above(eigenvalues)),
    }
    if z2 is not None:
        a = torch.nn.functional.normalize(z1.detach().float(), dim=1)
        b = torch.nn.functional.normalize(z2.detach().float(), dim=1)
        out["alignment"] = float((a - b).pow(2).sum(dim=1).mean())
    return out


@torch.no_grad()
def covariance_eigenvalues(z: torch.Tensor) -> np.ndarray:
    """The top ``min(n, d)`` covariance eigenvalues of ``z`` (``(n, d)``), descending.

    The other ``d - min(n, d)`` are zero.

    From the smaller Gram matrix of the centred batch, in float64 on ``z``'s device:
    torch's CPU ``svdvals`` measured 10-200x slower here, and a float32 Gram matrix
    would add round-off of ``1e-7 * lambda_max`` to every eigenvalue, which inflates the
    effective rank of a collapsed batch with large ``d``.
    """
    centred = z.double() - z.double().mean(dim=0, keepdim=True)
    gram = centred @ centred.T if centred.shape[0] < centred.shape[1] else centred.T @ centred
    values = torch.linalg.eigvalsh(gram).flip(0).clamp_min(0.0) / z.shape[0]
    return values.cpu().numpy()


class CollapseMonitor:
    """Training callback: diagnostics every ``config.every`` steps, spectra per epoch.

    ``run_dir``: where ``warnings.jsonl``, ``spectra.jsonl`` and ``tensorboard/`` go
    (``None``: print warnings only until ``on_epoch_end`` names the directory);
    ``context``: facts about the run for the likely causes (see
    :func:`nocollapse.train.warnings.likely_causes`: ``predictor``, ``stop_gradient``,
    ``weight_decay``, ``tau``, ``sigma2``).
    """

    def __init__(
        self,
        config: MonitorConfig | None = None,
        run_dir: str | Path | None = None,
        context: Mapping[str, Any] | None = None,
        console: Console | None = None,
        log_every: int | None = None,
    ) -> None:
        self.config = (config or MonitorConfig()).validate()
        # the training loop's logging interval (None: count steps since the last diagnostics)
        self.log_every = log_every
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.console = console or Console(stderr=True)
        self.warning = EarlyWarning(
            self.config.collapse_threshold,
            self.config.min_effective_rank,
            self.config.patience,
            dict(context or {}),
        )
        self.warnings: list[dict[str, Any]] = []
        self.last_step: int | None = None
        self._batch: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._tensorboard: SummaryWriter | None = None
        self._tensorboard_tried = False
        self._scales: deque[tuple[int, float]] = deque(maxlen=ESTIMATE_WINDOW + 1)  # log ||z||^2
        self._estimates: deque[tuple[float, float]] = deque(maxlen=ESTIMATE_WINDOW)

    # -- callbacks -------------------------------------------------------------------------
    def on_log(self, step: int, output: StepOutput, learner: Learner,
               record: dict[str, Any]) -> None:
        """Add the diagnostics to ``record`` when ``every`` steps have passed since the last."""
        if not self.config.enabled:
            return
        z1, z2 = output.z1, output.z2
        self._batch = (z1, z2)
        if self.config.every == 0 or not self._due(step):
            return
        self.last_step = step
        scalars = fast_scalars(z1, z2)
        record.update(scalars)
        record.update(self._theory_estimates(step, z1, z2, record.get("tau")))
        self._write_tensorboard(step, record)
        alarm = self.warning.update(step, scalars)
        if alarm is not None:
            self._raise_alarm(alarm)

    def _theory_estimates(self, step: int, z1: torch.Tensor, z2: torch.Tensor | None,
                          momentum: object) -> dict[str, float]:
        """``sigma2_est`` and ``tau_est`` of this log; their medians go to the warning."""
        if z2 is None or not isinstance(momentum, int | float) or not 0 <= momentum < 1:
            return {}
        scale = math.log(max(float(z1.detach().float().pow(2).sum(dim=1).mean()), 1e-30))
        if self._scales and step <= self._scales[-1][0]:
            self._scales.clear()  # a resumed or restarted run: start the growth afresh
        self._scales.append((step, scale))
        if len(self._scales) < 2:
            return {}
        # growth of log ||z||^2 per step over the last ESTIMATE_WINDOW logs (less noisy)
        (first_step, first), (last_step, last) = self._scales[0], self._scales[-1]
        growth = (last - first) / (last_step - first_step)
        sigma2 = diagnostics.augmentation_ratio(z1, z2)
        tau = diagnostics.target_ratio(float(momentum), growth)
        if not (math.isfinite(sigma2) and math.isfinite(tau)):
            return {}
        self._estimates.append((sigma2, tau))
        self._share_estimates()
        return dict(zip(ESTIMATE_KEYS, (sigma2, tau), strict=True))

    def _share_estimates(self) -> None:
        """The medians of the recent estimates into the warning's context (caller's win)."""
        context = self.warning.context
        if self._estimates and ("sigma2" not in context or context.get("estimated")):
            context.update(sigma2=statistics.median(e[0] for e in self._estimates),
                           tau=statistics.median(e[1] for e in self._estimates), estimated=True)

    def _due(self, step: int) -> bool:
        every, window = self.config.every, self.log_every
        if window is None:  # stateful: every steps since the last diagnostics
            return self.last_step is None or step - self.last_step >= every
        # stateless, so a resumed run logs at the same steps as an uninterrupted one:
        # the first log, then each log window that contains a multiple of `every`
        return step == window or step // every > (step - window) // every

    def on_epoch_end(self, epoch: int, learner: Learner, run_dir: Path) -> None:
        """Append this epoch's spectra to ``run_dir/spectra.jsonl``."""
        if self.run_dir is None:
            self.run_dir = Path(run_dir)
        if not (self.config.enabled and self.config.spectra):
            return
        record = spectra_record(learner, self._batch, self.config.alignment_max_dim)
        record = {"epoch": epoch, "step": self.last_step, **record}
        with MetricsWriter(run_dir, SPECTRA_FILE) as writer:
            writer.write(record)
        if self._tensorboard is not None:
            self._tensorboard.flush()  # the loop may end without calling close()

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to log as an uninterrupted one (plain values)."""
        return {"last_step": self.last_step, "streak": self.warning.streak,
                "fired": self.warning.fired,
                "scales": [[int(k), float(v)] for k, v in self._scales],
                "estimates": [[float(a), float(b)] for a, b in self._estimates]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.last_step = state.get("last_step")
        self.warning.streak = int(state.get("streak", 0))
        self.warning.fired = bool(state.get("fired", False))
        self._scales.clear()
        self._scales.extend((int(k), float(v)) for k, v in state.get("scales", []))
        self._estimates.clear()
        self._estimates.extend((float(a), float(b)) for a, b in state.get("estimates", []))
        self._share_estimates()

    def close(self) -> None:
        """Flush and close the TensorBoard writer, if one was opened."""
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None

    def on_train_end(self) -> None:
        """When the loop ends: closes TensorBoard."""
        self.close()

    # -- helpers ---------------------------------------------------------------------------
    def _raise_alarm(self, alarm: dict[str, Any]) -> None:
        self.warnings.append(alarm)
        causes = "\n".join(f"  - {cause}" for cause in alarm["likely_causes"])
        stop = (
            "\nStopping: monitor.stop_on_collapse is set." if self.config.stop_on_collapse else ""
        )
        self.console.print(
            Panel(
                f"{alarm['message']}.\nLikely causes:\n{causes}{stop}",
                title="nocollapse: collapse warning",
                border_style="red",
            )
        )
        if self.run_dir is not None:
            with MetricsWriter(self.run_dir, WARNINGS_FILE) as writer:
                writer.write(alarm)
        if self.config.stop_on_collapse:
            raise CollapseDetected(
                f"{alarm['message']} (monitor.stop_on_collapse=true; set it to false to "
                "keep training). Likely causes: " + " | ".join(alarm["likely_causes"])
            )

    def _write_tensorboard(self, step: int, record: Mapping[str, Any]) -> None:
        writer = self._tensorboard_writer()
        if writer is None:
            return
        for key, value in record.items():
            if key not in {"step", "epoch"} and _is_number(value):
                writer.add_scalar(key, float(value), step)

    def _tensorboard_writer(self) -> SummaryWriter | None:
        if self._tensorboard_tried or not self.config.tensorboard or self.run_dir is None:
            return self._tensorboard
        self._tensorboard_tried = True
        self._tensorboard = open_tensorboard(self.run_dir / TENSORBOARD_DIR)
        return self._tensorboard


def run_context(config: TrainConfig) -> dict[str, float | str | bool]:
    """Facts for :func:`~nocollapse.train.warnings.likely_causes` from a ``TrainConfig``.

    ``weight_decay`` from ``config.optim``; ``predictor`` and ``stop_gradient`` from the
    resolved ``config.learner``.
    """
    return {"weight_decay": config.optim.weight_decay, "predictor": config.learner.predictor,
            "stop_gradient": config.learner.stop_gradient}


def open_tensorboard(log_dir: Path) -> SummaryWriter | None:
    """A ``SummaryWriter`` for ``log_dir``, or ``None`` when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # the optional extra is absent: TensorBoard output is simply skipped
        return None
    return SummaryWriter(log_dir=str(log_dir), flush_secs=10)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _numpy_or_none(value: torch.Tensor | None) -> np.ndarray | None:
    return None if value is None else _as_numpy(value)


def _as_numpy(value: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def spectra_record(
    learner: Learner, batch: tuple[torch.Tensor, torch.Tensor | None] | None,
    alignment_max_dim: int = 128
) -> dict[str, Any]:
    """Eigenvalues (descending) of ``F_hat``, ``Wp`` and the batch correlation, and more.

    ``learner.correlation()`` and ``learner.predictor_matrix()`` may return ``None``
    (no running correlation, non-linear or no predictor); ``batch``: the last
    ``(z1, z2)`` seen, ``(B, d)`` each, or ``None``.
    """
    F = _numpy_or_none(learner.correlation())
    Wp = _numpy_or_none(learner.predictor_matrix())
    out: dict[str, Any] = {}
    if F is not None:
        out["F_eigenvalues"] = np.linalg.eigvalsh((F + F.T) / 2)[::-1].tolist()
    if Wp is not None:
        out["Wp_eigenvalues"] = diagnostics.predictor_spectrum(Wp).tolist()
        out["Wp_asymmetry"] = diagnostics.asymmetry(Wp)
    if F is not None and Wp is not None and F.shape == Wp.shape:
        # relative ||[F, Wp]||_F / (||F||_F ||Wp||_F) (docs/theory.md#vocabulary)
        out["commutator"] = diagnostics.commutator_norm(F, Wp)
        out["Wp_in_F_basis"] = diagnostics.predictor_in_basis(F, Wp)[1].tolist()
        if F.shape[0] <= alignment_max_dim:
            # 4 decimals: a heat map needs no more, and d = 128 stays ~110 kB per epoch
            out["alignment"] = np.round(diagnostics.alignment_matrix(F, Wp), 4).tolist()
    if batch is not None:
        z1 = _as_numpy(batch[0])
        z2 = None if batch[1] is None else _as_numpy(batch[1])
        z = z1 if z2 is None else np.concatenate([z1, z2])
        out["Z_eigenvalues"] = diagnostics.correlation_eigenvalues(z).tolist()
        # The predictor figures need F and Wp of the embeddings' width (a linear predictor).
        usable = F is not None and Wp is not None and F.shape == Wp.shape == (z.shape[1],) * 2
        out["summary"] = diagnostics.summarize(
            z1, z2, F if usable else None, Wp if usable else None
        )
    return out
