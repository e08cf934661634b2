"""Early warning of collapse: thresholds with patience, likely causes, ``warnings.jsonl``.

A cause is named only where the run's own facts or numbers support it
(:data:`CAUSES`, docs/diagnose.md#causes): no predictor and no stop-gradient from the
learner's configuration (tian2021: ``W -> 0`` in both), a weight decay that shrinks the
weights by more than :data:`DECAY_PER_STEP` a step, a learning rate far above the one the
recipe was tuned at or a collapse within the first log interval, an augmentation signal
``sigma2_est`` near zero (the two views nearly the same image), and a batch whose rows
bound the per-batch rank. The theory's ``eta / eta_c`` (docs/theory.md#tian2021-threshold)
is quoted as a figure beside them, never as a cause: docs/theory.md says it is not a
collapse criterion on a real network. Nothing here raises on a bad context or bad
scalars: a warning that cannot be explained says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from nocollapse.diagnostics import critical_eta
from nocollapse.errors import NocollapseError
from nocollapse.runio import WARNINGS_FILE
from nocollapse.runio.records import WarningLine, finite_or_none

__all__ = ["CAUSES", "WARNINGS_FILE", "CollapseDetected", "EarlyWarning", "likely_causes",
           "run_figures"]


class CollapseDetected(NocollapseError, RuntimeError):  # noqa: N818 (name fixed by the API)
    """Raised by :class:`~nocollapse.monitor.CollapseMonitor` with ``stop_on_collapse``."""


# lr x weight decay: the fraction every weight loses to the decay alone each step. At 1e-3
# the weights shrink e-fold in 1000 steps whatever the gradient does; the CPU recipe's
# 0.12 x 2.5e-4 = 3e-5 is 30x below, realdata-phase's collapsed weight decays (0.1 and 1 at
# lr 0.06) 6x and 60x above (docs/diagnose.md#causes).
DECAY_PER_STEP = 1e-3
# a learning rate this many times the one the recipe was tuned at (context ``reference_lr``)
LR_FACTOR = 4.0
# sigma2_est below this: the views' difference carries < 1% of the embeddings' variance
SIGMA2_FLOOR = 0.01
# the random-init encoder's per-batch effective rank above this fraction of its bound (the
# batch's rows - 1): the figure measures the batch, not the encoder
ROW_BOUND_FRACTION = 0.5
# the first log's effective rank below this fraction of the random-init encoder's: the
# rank fell within the first log interval
EARLY_FRACTION = 0.25
UNEXPLAINED = ("no cause named: the run's figures support none of the known causes (no "
               "predictor, no stop-gradient, weight decay or learning rate too high, too "
               "little augmentation, batch too small); `nocollapse diagnose RUN_DIR` "
               "measures each by branching the run (docs/diagnose.md)")


def number(context: Mapping[str, object], key: str) -> float | None:
    """``context[key]`` as a finite float, or None (absent, not a number, NaN, inf, bool)."""
    return finite_or_none(context.get(key)) if isinstance(context, Mapping) else None


def _no_predictor(context: Mapping[str, object]) -> str | None:
    if str(context.get("predictor", "")).lower() not in {"none", "identity"}:
        return None
    return ("no predictor: with Wp = I and a stop-gradient the linear theory gives "
            "dW/dt = -(X' + eta I) W, so W -> 0 (tian2021; docs/theory.md#tian2021)"
            + _evidence(context, "predictor_evidence"))


def _no_stop_gradient(context: Mapping[str, object]) -> str | None:
    if context.get("stop_gradient") is not False:
        return None
    return ("no stop-gradient: the gradient through both branches drives W -> 0 "
            "(tian2021 Theorem 2); restore the stop-gradient on the target branch"
            + _evidence(context, "stop_gradient_evidence"))


def _weight_decay(context: Mapping[str, object]) -> str | None:
    eta, lr = number(context, "weight_decay"), number(context, "lr")
    if eta is None or lr is None or eta <= 0 or lr * eta < DECAY_PER_STEP:
        return None
    per_step = lr * eta
    if not math.isfinite(per_step):  # both finite, their product past float's range
        return (f"weight decay too high: lr x weight decay = {lr:g} x {eta:g}, past float "
                "range, of every weight a step; lower optim.weight_decay")
    return (f"weight decay too high: lr x weight decay = {lr:g} x {eta:g} = {per_step:.3g} "
            f"of every weight a step (>= {DECAY_PER_STEP:g}: the weights shrink e-fold in "
            f"{1 / per_step:.0f} steps from the decay alone); lower optim.weight_decay")


def _learning_rate(context: Mapping[str, object]) -> str | None:
    lr, reference = number(context, "lr"), number(context, "reference_lr")
    if lr is None or lr <= 0:
        return None
    if reference is not None and reference > 0 and lr >= LR_FACTOR * reference:
        ratio = lr / reference
        times = f"{ratio:.3g}x" if math.isfinite(ratio) else "past float range times"
        return (f"learning rate too high: lr {lr:g} is {times} the "
                f"{reference:g} the recipe was tuned at; lower optim.lr")
    first, ref_rank = number(context, "first_rank"), number(context, "reference_rank")
    step = number(context, "first_step")
    if first is None or ref_rank is None or ref_rank <= 0 or first >= EARLY_FRACTION * ref_rank:
        return None
    if _weight_decay(context) is not None:  # a decay that fast explains an early fall too
        return None
    when = f"step {step:g}" if step is not None else "the first log"
    return (f"learning rate too high: the effective rank was already {first:.3g} at {when}, "
            f"{first / ref_rank:.2g} of the random-init encoder's {ref_rank:.3g} on the same "
            f"batch shape: the collapse came within the first steps, as too large a step "
            f"does (lr {lr:g}); lower optim.lr")


def _augmentation(context: Mapping[str, object]) -> str | None:
    sigma2 = number(context, "sigma2")
    if sigma2 is None or sigma2 < 0 or sigma2 >= SIGMA2_FLOOR:
        return None
    return (f"too little augmentation (sigma^2 ~ 0): the views' difference is {sigma2:.3g} of "
            "the embeddings' variance (sigma2_est), so the two views are nearly the same "
            "image and the loss is met without learning; strengthen data.augment")


def _batch(context: Mapping[str, object]) -> str | None:
    rows, dim = number(context, "batch_rows"), number(context, "embedding_dim")
    ref_rank = number(context, "reference_rank")
    if rows is None or dim is None or rows < 2 or rows - 1 >= dim:
        return None
    bound = rows - 1
    if ref_rank is None or ref_rank < ROW_BOUND_FRACTION * bound:
        return None
    return (f"batch too small for the rank measured: the per-batch effective rank comes from "
            f"{rows:.0f} rows (at most {bound:.0f}) of {dim:.0f}-dimensional embeddings, and "
            f"the random-init encoder already reaches {ref_rank:.3g} of it; raise "
            "data.batch_size")


# name -> rule: a sentence when the context supports the cause, else None. A new cause is
# one more entry (docs/diagnose.md#causes).
CAUSES: dict[str, Callable[[Mapping[str, object]], str | None]] = {
    "no predictor": _no_predictor,
    "no stop-gradient": _no_stop_gradient,
    "weight decay too high": _weight_decay,
    "learning rate too high": _learning_rate,
    "too little augmentation": _augmentation,
    "batch too small": _batch,
}


def likely_causes(context: Mapping[str, object]) -> list[str]:
    """The causes the run's facts and numbers support, in words; never raises.

    ``context`` keys (all optional; a missing, NaN or non-numeric one supports nothing):
    ``predictor`` (kind, ``"none"`` for no predictor), ``stop_gradient`` (bool),
    ``weight_decay``, ``lr``, ``reference_lr`` (the lr the recipe was tuned at),
    ``sigma2`` (the augmentation signal, ``sigma2_est``), ``first_rank`` / ``first_step``
    (the effective rank at the first log), ``reference_rank`` (the random-init encoder's on
    the same batch shape), ``batch_rows`` (2B) and ``embedding_dim``, ``predictor_evidence``
    / ``stop_gradient_evidence`` (how an inferred fact was found, quoted after its cause).
    """
    causes: list[str] = []
    for rule in CAUSES.values():
        try:
            found = rule(context)
        except Exception:
            found = None
        if found:
            causes.append(found)
    return causes or [UNEXPLAINED]


def run_figures(context: Mapping[str, object]) -> list[str]:
    """Figures quoted beside the causes (not causes): the theory's ``eta / eta_c``."""
    try:
        eta, sigma2 = number(context, "weight_decay"), number(context, "sigma2")
        tau, scale = number(context, "tau"), number(context, "data_scale")
        if eta is None or eta <= 0 or sigma2 is None or sigma2 < 0:
            return []
        tau = 1.0 if tau is None else tau
        x = scale if scale is not None and scale > 0 else 1.0
        eta_c = critical_eta(sigma2, tau, x)
        if not (math.isfinite(eta_c) and eta_c > 0):
            return [f"eta/eta_c not measurable (eta_c = {eta_c:.3g} from tau={tau:.3g})"]
        source = "estimated from this run" if context.get("estimated") else "given"
        return [f"eta/eta_c = {eta / eta_c:.3g} (eta={eta:g}, eta_c = x tau^2/(4(1+sigma^2)) = "
                f"{eta_c:.4g}, x={x:.3g}, tau={tau:.3g}, sigma^2={sigma2:.3g}, {source}): a "
                "figure, not a collapse criterion on a real network "
                "(docs/theory.md#tian2021-threshold)"]
    except Exception:
        return []


def _evidence(context: Mapping[str, object], key: str) -> str:
    """`` (how the fact was found)`` when the context says so (e.g. the Lightning callback)."""
    evidence = context.get(key)
    return f" ({evidence})" if isinstance(evidence, str) and evidence else ""


@dataclass
class EarlyWarning:
    """Counts consecutive logs past the thresholds; fires once per episode of collapse.

    ``update`` returns a warning record the ``patience``-th consecutive time the
    collapse level exceeds ``collapse_threshold``, the effective rank falls below
    ``min_effective_rank``, below ``rank_drop`` times the highest effective rank of the
    run so far (0 turns this test off), below ``reference_drop`` times the random-init
    encoder's on the same batch shape (``reference_rank``, when the monitor measured it at
    step 0: a run that collapsed before its first log has no healthy peak of its own; 0:
    off), or the augmentation signal
    ``sigma2_est`` is below ``sigma2_floor`` (0: off); a healthy log re-arms it. Logs
    before step ``grace_steps`` raise the run's highest rank but never count towards the
    patience (a freshly initialised predictor's transient: docs/sweep.md#grace).
    Non-finite or non-numeric scalars count as absent: ``update`` never raises.
    """

    collapse_threshold: float
    min_effective_rank: float
    patience: int
    context: dict[str, object] = field(default_factory=dict)
    rank_drop: float = 0.0
    streak: int = 0
    fired: bool = False
    peak_rank: float = 0.0
    grace_steps: int = 0
    reference_rank: float | None = None
    sigma2_floor: float = 0.0
    reference_drop: float = 0.0

    def reasons(self, scalars: Mapping[str, object]) -> list[str]:
        """Which thresholds ``scalars`` cross, in words (empty when healthy)."""
        found = []
        level = number(scalars, "collapse_level")
        if level is not None and level > self.collapse_threshold:
            found.append(f"collapse level {level:.3f} > {self.collapse_threshold:g}")
        rank = number(scalars, "effective_rank")
        reference = finite_or_none(self.reference_rank) or 0.0
        if rank is not None and rank < self.min_effective_rank:
            found.append(f"effective rank {rank:.3f} < {self.min_effective_rank:g}")
        elif rank is not None and rank < self.rank_drop * self.peak_rank:
            found.append(f"effective rank {rank:.3f} < {self.rank_drop:g} x its highest "
                         f"in this run ({self.peak_rank:.3f}): dimensional collapse")
        elif rank is not None and rank < self.reference_drop * reference:
            found.append(f"effective rank {rank:.3f} < {self.reference_drop:g} x the random-init "
                         f"encoder's on the same batch shape ({reference:.3f}): "
                         "dimensional collapse")
        sigma2 = number(scalars, "sigma2_est")
        if sigma2 is not None and 0 <= sigma2 < self.sigma2_floor:
            found.append(f"augmentation signal sigma2_est {sigma2:.4f} < {self.sigma2_floor:g}"
                         ": the views are nearly the same image")
        return found

    def update(self, step: int, scalars: Mapping[str, object]) -> WarningLine | None:
        """Count this log; the warning record when it fires (never raises)."""
        reasons = self.reasons(scalars)
        rank = number(scalars, "effective_rank")
        if rank is not None:
            self.peak_rank = max(self.peak_rank, rank)
            self.context.setdefault("first_rank", rank)
            self.context.setdefault("first_step", step)
        if not reasons or step < self.grace_steps:
            self.streak, self.fired = 0, False
            return None
        self.streak += 1
        if self.fired or self.streak < self.patience:
            return None
        self.fired = True
        context = dict(self.context)
        sigma2 = number(scalars, "sigma2_est")
        if sigma2 is not None and "sigma2" not in context:
            context["sigma2"] = sigma2
        return {
            "step": step,
            "message": f"collapse suspected at step {step}: "
            + "; ".join(reasons)
            + f" for {self.streak} consecutive logs",
            "reasons": reasons,
            "collapse_level": number(scalars, "collapse_level"),
            "effective_rank": rank,
            "consecutive_logs": self.streak,
            "likely_causes": likely_causes(context),
            "figures": run_figures(context),
        }
