"""``CollapseMonitor``: collapse diagnostics during training, spectra per epoch, early warning.

Framework-free: it reads plain tensors (the two views' embeddings, optionally the
running correlation ``F_hat`` and the predictor matrix ``Wp``) and imports nothing of
training. :class:`nocollapse.train` uses it as a training-loop callback and
:class:`nocollapse.monitor.Monitor` wraps it for a user's own loop:

- ``on_log`` every ``MonitorConfig.every`` steps adds cheap scalars to the metrics
  record (``embedding_std``, ``collapse_level``, ``effective_rank``, ``rankme``,
  ``participation_ratio``, ``dims_above``, ``alignment``; same names and formulas as
  :func:`nocollapse.diagnostics.summarize`), computed on the embeddings' device from
  one eigendecomposition of the smaller Gram matrix of the ``(2B, d)`` batch, so the
  cost is ``O(B d min(B, d) + min(B, d)^3)`` and only ``min(2B, d)`` numbers leave the GPU;
- ``on_epoch_end`` appends one line to ``spectra.jsonl``: eigenvalues of ``F_hat``,
  of the symmetric part of ``Wp`` and of the batch correlation, the alignment matrix
  ``|u_i^T v_j|`` (for ``d <= alignment_max_dim``) and the full ``summarize`` dict;
- the run's ``sigma2_est`` (augmentation over data variance of the embeddings),
  ``tau_est`` (target/online output ratio) and ``scale_est`` (the data scale ``x`` of the
  projector's last layer, times the loss's gain) go into the same record and, as medians
  of the last ``ESTIMATE_WINDOW`` logs, into the early warning's context, so its
  weight-decay cause names ``eta / eta_c`` (docs/theory.md#theory-in-a-run);
- the early warning (:mod:`nocollapse.monitor.warnings`) prints a rich panel, appends
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
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from rich.console import Console
from rich.panel import Panel

from nocollapse import diagnostics
from nocollapse.errors import check_in_range, check_nonnegative, check_positive
from nocollapse.monitor.measures import SpectralSource, Views, fast_scalars, spectra_record
from nocollapse.monitor.warnings import SIGMA2_FLOOR, CollapseDetected, EarlyWarning
from nocollapse.runio import (
    ESTIMATE_KEYS,
    SCALE_KEY,
    SPECTRA_FILE,
    TENSORBOARD_DIR,
    WARNINGS_FILE,
    MetricsWriter,
)
from nocollapse.runio.records import WarningLine, is_finite_number

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

ESTIMATE_WINDOW = diagnostics.ESTIMATE_WINDOW  # logs whose median estimates the warning quotes
__all__ = [
    "SPECTRA_FILE",
    "CollapseDetected",
    "CollapseMonitor",
    "MonitorConfig",
    "fast_scalars",
]


@dataclass
class MonitorConfig:
    """Options of :class:`CollapseMonitor` (the ``monitor`` section of a training config).

    ``every``: steps between diagnostics (0 disables the per-step scalars);
    ``collapse_threshold`` in [0, 1] and ``min_effective_rank`` >= 0 define a suspect
    log, and so does an effective rank below ``rank_drop`` (in [0, 1), 0: off) times its
    highest value so far in the run (dimensional collapse); ``patience``: consecutive
    suspect logs before the warning (K); ``grace_steps``: logs before this step never
    count towards ``patience`` (they still set the highest effective rank);
    ``stop_on_collapse``: raise :class:`CollapseDetected` after the warning;
    ``spectra``: write ``spectra.jsonl`` per epoch; ``alignment_max_dim``: save the
    ``(d, d)`` alignment matrix only up to this ``d`` (it is ``d^2`` numbers per epoch);
    ``tensorboard``: also write event files when the package is installed.
    """

    enabled: bool = True
    every: int = 20
    collapse_threshold: float = 0.8
    min_effective_rank: float = 1.5
    # An effective rank below a quarter of the run's highest: IsoLoss under solarize fell
    # from 20 to 5 while its k-NN fell below the untrained encoder's (docs/quality.md);
    # measured healthy runs' lowest was 0.34 of their highest (the default run, whose first
    # log is near the untrained encoder's rank), no-predictor SimSiam fell to 0.15.
    rank_drop: float = 0.25
    patience: int = 3
    grace_steps: int = 0
    # the augmentation signal sigma2_est below this is a suspect log (0: off): the two views
    # are nearly the same image (docs/diagnose.md#detection)
    sigma2_floor: float = SIGMA2_FLOOR
    # an effective rank below this fraction of the random-init encoder's on the same batch
    # shape (measured at step 0) is suspect: chosen on docs/diagnose.md's tuning runs (their
    # collapses at most 0.071 of it, the presets' defaults at least 0.212), 0: off
    reference_drop: float = 0.125
    stop_on_collapse: bool = False
    spectra: bool = True
    alignment_max_dim: int = 128
    tensorboard: bool = True

    def validate(self) -> MonitorConfig:
        check_nonnegative("monitor.every", self.every)
        check_in_range("monitor.collapse_threshold", self.collapse_threshold, 0.0, 1.0)
        check_nonnegative("monitor.min_effective_rank", self.min_effective_rank)
        check_in_range("monitor.rank_drop", self.rank_drop, 0.0, 0.999999)
        check_positive("monitor.patience", self.patience)
        check_nonnegative("monitor.grace_steps", self.grace_steps)
        check_in_range("monitor.sigma2_floor", self.sigma2_floor, 0.0, 1.0)
        check_in_range("monitor.reference_drop", self.reference_drop, 0.0, 0.999999)
        check_nonnegative("monitor.alignment_max_dim", self.alignment_max_dim)
        return self


class CollapseMonitor:
    """Training callback: diagnostics every ``config.every`` steps, spectra per epoch.

    ``run_dir``: where ``warnings.jsonl``, ``spectra.jsonl`` and ``tensorboard/`` go
    (``None``: print warnings only until ``on_epoch_end`` names the directory);
    ``context``: facts about the run for the likely causes (see
    :func:`nocollapse.monitor.likely_causes`: ``predictor``, ``stop_gradient``,
    ``weight_decay``, ``tau``, ``sigma2``).
    """

    def __init__(
        self,
        config: MonitorConfig | None = None,
        run_dir: str | Path | None = None,
        context: Mapping[str, object] | None = None,
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
            rank_drop=self.config.rank_drop,
            grace_steps=self.config.grace_steps,
            sigma2_floor=self.config.sigma2_floor,
            reference_drop=self.config.reference_drop,
        )
        # the random-init encoder's figures on the run's batch shape (set_reference)
        self.reference: dict[str, float] = {}
        self.warnings: list[WarningLine] = []
        self.last_step: int | None = None
        self._batch: tuple[torch.Tensor, torch.Tensor | None] | None = None
        self._tensorboard: SummaryWriter | None = None
        self._tensorboard_tried = False
        self._estimates: deque[tuple[float, float, float]] = deque(maxlen=ESTIMATE_WINDOW)
        self.last_reference_step: int | None = None

    # -- callbacks -------------------------------------------------------------------------
    def on_log(self, step: int, output: Views, learner: SpectralSource,
               record: dict[str, object], due: bool | None = None) -> None:
        """Add the diagnostics to ``record`` when ``every`` steps have passed since the last
        (``due``: the caller's decision instead of :meth:`is_due`)."""
        if not self.config.enabled:
            return
        z1, z2 = output.z1, output.z2
        self._batch = (z1, z2)
        if not (self.is_due(step) if due is None else due):
            return
        self.last_step = step
        scalars: dict[str, float] = fast_scalars(z1, z2)
        record.update(scalars)
        record.update(self._theory_estimates(output, learner, record.get("tau")))
        if z2 is not None and "sigma2_est" not in record:  # no EMA rate logged (base_tau 1)
            record["sigma2_est"] = diagnostics.augmentation_ratio(z1, z2)
        if self.reference and self.last_reference_step is None:
            record.update({f"init_{key}": value for key, value in self.reference.items()})
            self.last_reference_step = step
        sigma2 = record.get("sigma2_est")
        if isinstance(sigma2, float):
            scalars["sigma2_est"] = sigma2
        rows = z1.shape[0] * (1 if z2 is None else 2)
        self.warning.context.update(batch_rows=rows, embedding_dim=z1.shape[1])
        self._write_tensorboard(step, record)
        alarm = self.warning.update(step, scalars)
        if alarm is not None:
            self._raise_alarm(alarm)

    @torch.no_grad()
    def set_reference(self, z1: torch.Tensor, z2: torch.Tensor | None = None) -> dict[str, float]:
        """The random-init encoder's figures on the run's batch shape (the views of one batch
        through the untrained learner, at step 0): the early warning's rank reference, which
        a run that collapses before its first log cannot give itself; logged as ``init_*``
        in the first diagnostics record."""
        scalars = fast_scalars(z1, z2)
        self.reference = {key: scalars[key] for key in ("effective_rank", "rankme")
                          if math.isfinite(scalars[key])}
        rank = self.reference.get("effective_rank")
        if rank is not None:
            self.warning.reference_rank = rank
            self.warning.context["reference_rank"] = rank
        self.last_reference_step = None
        return dict(self.reference)

    def _theory_estimates(self, output: Views, learner: SpectralSource,
                          momentum: object) -> dict[str, float]:
        """``sigma2_est``, ``tau_est``, ``scale_est`` of this log (diagnostics.run_estimates);
        their medians over the last ``ESTIMATE_WINDOW`` logs go to the warning."""
        z1, z2 = output.z1, output.z2
        if z2 is None or not isinstance(momentum, int | float) or not 0 <= momentum < 1:
            return {}
        t1, _t2 = getattr(output, "t1", None), getattr(output, "t2", None)
        sigma2 = diagnostics.augmentation_ratio(z1, z2)
        tau = (diagnostics.target_online_ratio(z1, t1) if t1 is not None
               else 1.0 if momentum == 0 else math.nan)
        scale = math.nan
        layer, gain = getattr(learner, "output_layer", None), getattr(learner, "loss_gain", None)
        if callable(layer) and callable(gain):
            (weight, bias), (factor, _) = layer(), gain()
            scale = diagnostics.data_scale(z1, z2, weight, bias, gain=factor)
        if not (math.isfinite(sigma2) and math.isfinite(tau)):
            return {}
        self._estimates.append((sigma2, tau, scale))
        self._share_estimates()
        out = dict(zip(ESTIMATE_KEYS, (sigma2, tau), strict=True))
        return out if not math.isfinite(scale) else {**out, SCALE_KEY: scale}

    def _share_estimates(self) -> None:
        """The medians of the recent estimates into the warning's context (caller's win)."""
        context = self.warning.context
        if self._estimates and ("sigma2" not in context or context.get("estimated")):
            sigma2, tau, scale = (diagnostics.smoothed(e[i] for e in self._estimates)
                                  for i in range(3))
            context.update(sigma2=sigma2, tau=tau, estimated=True)
            if math.isfinite(scale):
                context["data_scale"] = scale

    def is_due(self, step: int) -> bool:
        """Whether ``on_log`` at ``step`` computes the diagnostics."""
        if self.config.every == 0:
            return False
        every, window = self.config.every, self.log_every
        if window is None:  # stateful: every steps since the last diagnostics
            return self.last_step is None or step - self.last_step >= every
        # stateless, so a resumed run logs at the same steps as an uninterrupted one:
        # the first log, then each log window that contains a multiple of `every`
        return step == window or step // every > (step - window) // every

    def on_epoch_end(self, epoch: int, learner: SpectralSource, run_dir: Path) -> None:
        """Append this epoch's spectra to ``run_dir/spectra.jsonl``."""
        if self.run_dir is None:
            self.run_dir = Path(run_dir)
        if not (self.config.enabled and self.config.spectra):
            return
        record = spectra_record(learner, self._batch, self.config.alignment_max_dim,
                                self.why_no_predictor())
        record = {"epoch": epoch, "step": self.last_step, **record}
        with MetricsWriter(run_dir, SPECTRA_FILE) as writer:
            writer.write(record)
        if self._tensorboard is not None:
            self._tensorboard.flush()  # the loop may end without calling close()

    def why_no_predictor(self) -> str:
        """Why a spectra line has no ``Wp`` figures, from the run's facts."""
        kind = self.warning.context.get("predictor")
        if kind is None:
            return "no linear predictor matrix Wp was given"
        if str(kind).lower() in {"none", "identity"}:
            return "the run has no predictor"
        return f"the predictor ({kind}) is not one linear map, so it has no matrix Wp"

    def state_dict(self) -> dict[str, object]:
        """What a resumed run needs to log as an uninterrupted one (plain values)."""
        batch = None if self._batch is None else [
            None if view is None else view.detach().cpu() for view in self._batch]
        return {"last_step": self.last_step, "streak": self.warning.streak,
                "fired": self.warning.fired, "peak_rank": float(self.warning.peak_rank),
                "estimates": [[float(v) for v in e] for e in self._estimates],
                "reference": dict(self.reference),
                "reference_logged": self.last_reference_step,
                "first_rank": [self.warning.context.get(k) for k in ("first_rank", "first_step")],
                "warnings": [dict(w) for w in self.warnings],
                # the last batch seen: the next spectra line's Z_eigenvalues and summary
                # when an epoch ends before another log step
                "batch": batch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (a checkpoint without a key keeps its default)."""
        self.last_step = state.get("last_step")
        self.warning.streak = int(state.get("streak", 0))
        self.warning.fired = bool(state.get("fired", False))
        self.warning.peak_rank = float(state.get("peak_rank", 0.0))
        reference = state.get("reference") or {}
        self.reference = {str(k): float(v) for k, v in reference.items()}
        if "effective_rank" in self.reference:
            self.warning.reference_rank = self.reference["effective_rank"]
            self.warning.context["reference_rank"] = self.reference["effective_rank"]
        self.last_reference_step = state.get("reference_logged")
        first = state.get("first_rank") or [None, None]
        for key, value in zip(("first_rank", "first_step"), first, strict=False):
            if value is not None:
                self.warning.context[key] = value
        # the warnings it wrote (warnings.jsonl's lines)
        self.warnings = [cast(WarningLine, dict(w)) for w in state.get("warnings", [])]
        batch = state.get("batch")
        self._batch = None if not batch else (batch[0], batch[1])
        self._estimates.clear()
        for entry in state.get("estimates", []):  # (sigma2, tau[, scale]): older runs had two
            values = [float(v) for v in entry] + [math.nan]
            self._estimates.append((values[0], values[1], values[2]))
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
    def _raise_alarm(self, alarm: WarningLine) -> None:
        self.warnings.append(alarm)
        causes = "\n".join(f"  - {cause}" for cause in alarm["likely_causes"])
        figures = "".join(f"\n  ({figure})" for figure in alarm.get("figures", []))
        stop = (
            "\nStopping: monitor.stop_on_collapse is set." if self.config.stop_on_collapse else ""
        )
        self.console.print(
            Panel(
                f"{alarm['message']}.\nLikely causes:\n{causes}{figures}{stop}",
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

    def _write_tensorboard(self, step: int, record: Mapping[str, object]) -> None:
        writer = self._tensorboard_writer()
        if writer is None:
            return
        for key, value in record.items():
            if key not in {"step", "epoch"} and is_finite_number(value):
                writer.add_scalar(key, float(value), step)

    def _tensorboard_writer(self) -> SummaryWriter | None:
        if self._tensorboard_tried or not self.config.tensorboard or self.run_dir is None:
            return self._tensorboard
        self._tensorboard_tried = True
        self._tensorboard = open_tensorboard(self.run_dir / TENSORBOARD_DIR)
        return self._tensorboard


def open_tensorboard(log_dir: Path) -> SummaryWriter | None:
    """A ``SummaryWriter`` for ``log_dir``, or ``None`` when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # the optional extra is absent: TensorBoard output is simply skipped
        return None
    return SummaryWriter(log_dir=str(log_dir), flush_secs=10)

