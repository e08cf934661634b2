"""Early warning of collapse: thresholds with patience, likely causes, ``warnings.jsonl``.

The likely causes come from the linear theory (docs/theory.md#tian2021):
without a predictor (``Wp = I``, stop-gradient kept) ``dW/dt = -(X' + eta I) W`` so
``W -> 0``; without stop-gradient ``W -> 0`` when ``lambda_min(H) > 0`` (Theorem 2);
with weight decay ``eta`` every eigenmode collapses when
``eta > eta_c = x tau^2 / (4 (1 + sigma^2))``, ``x`` the data scale (the third-order mode
dynamics; one definition, :func:`nocollapse.diagnostics.critical_eta`). The monitor
estimates ``x``, ``sigma^2`` and ``tau`` from the run (docs/theory.md#theory-in-a-run)
and says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from nocollapse.diagnostics import critical_eta
from nocollapse.errors import NocollapseError
from nocollapse.runio import WARNINGS_FILE
from nocollapse.runio.records import WarningLine

__all__ = ["WARNINGS_FILE", "CollapseDetected", "EarlyWarning", "likely_causes"]


class CollapseDetected(NocollapseError, RuntimeError):  # noqa: N818 (name fixed by the API)
    """Raised by :class:`~nocollapse.monitor.CollapseMonitor` with ``stop_on_collapse``."""


PLAUSIBLE_ETA_C_FLOOR = 0.025  # eta_c = tau^2 / (4 (1 + 9)): sigma^2 = 9 at tau = 1


def likely_causes(context: Mapping[str, object]) -> list[str]:
    """Human-readable likely causes of collapse, given what is known about the run.

    ``context`` keys (all optional): ``predictor`` (kind, ``"none"`` for no predictor),
    ``stop_gradient`` (bool), ``weight_decay`` (the theory's ``eta``), ``tau`` (target
    ratio, default 1), ``sigma2`` (augmentation variance ``sigma^2``, if known),
    ``data_scale`` (the theory's ``x``; 1, and said so, when absent), ``estimated``
    (True: they were estimated from the run), ``predictor_evidence`` /
    ``stop_gradient_evidence`` (how an inferred fact was found, quoted after its cause).
    """
    causes = []
    if str(context.get("predictor", "")).lower() in {"none", "identity"}:
        causes.append(
            "no predictor: with Wp = I and a stop-gradient the linear theory gives "
            "dW/dt = -(X' + eta I) W, so W -> 0 (tian2021; docs/theory.md#tian2021)"
            + _evidence(context, "predictor_evidence")
        )
    if context.get("stop_gradient") is False:
        causes.append(
            "no stop-gradient: the gradient through both branches drives W -> 0 "
            "(tian2021 Theorem 2); restore the stop-gradient on the target branch"
            + _evidence(context, "stop_gradient_evidence")
        )
    eta = context.get("weight_decay")
    if isinstance(eta, int | float) and eta > 0:
        found_tau = context.get("tau", 1.0)
        tau = float(found_tau) if isinstance(found_tau, int | float) else 1.0
        sigma2 = context.get("sigma2")
        if isinstance(sigma2, int | float):
            scale = context.get("data_scale")
            known = isinstance(scale, int | float) and math.isfinite(scale) and scale > 0
            x = float(scale) if isinstance(scale, int | float) and known else 1.0
            eta_c = critical_eta(float(sigma2), tau, x)
            verdict = "above" if eta > eta_c else "below"
            source = "estimated from this run" if context.get("estimated") else "given"
            scale_note = f"x={x:.3g}" if known else "x=1: data scale not measured"
            causes.append(
                f"weight decay eta={eta:g} is {verdict} the theory's critical value "
                f"eta_c = x tau^2/(4(1+sigma^2)) = {eta_c:.4g} ({scale_note}, tau={tau:.3g}, "
                f"sigma^2={float(sigma2):.3g}, {source}; eta/eta_c = {eta / eta_c:.3g}); "
                "above it every mode collapses (tian2021; docs/theory.md#tian2021-threshold)"
            )
        elif eta >= PLAUSIBLE_ETA_C_FLOOR * tau**2 or not causes:
            # below this eta would need sigma^2 > 9 (augmentation noise 3x the signal) to
            # exceed eta_c: naming it beside a real cause would only mislead
            causes.append(
                f"weight decay eta={eta:g} may be too strong for the augmentation: in the "
                "linear theory collapse is unavoidable when eta > eta_c = "
                f"x tau^2/(4(1+sigma^2)) (<= {critical_eta(0.0, tau):.3g} x at tau={tau:g}, x "
                "the data scale; stronger augmentation, i.e. larger sigma^2, lowers it)"
            )
    if not causes:
        causes.append(
            "common causes: no predictor, no stop-gradient, or weight decay too strong for "
            "the augmentation (theory: eta > eta_c = x tau^2/(4(1+sigma^2)) collapses every "
            "mode); also a learning rate too high for the predictor"
        )
    return causes


def _evidence(context: Mapping[str, object], key: str) -> str:
    """`` (how the fact was found)`` when the context says so (e.g. the Lightning callback)."""
    evidence = context.get(key)
    return f" ({evidence})" if isinstance(evidence, str) and evidence else ""


@dataclass
class EarlyWarning:
    """Counts consecutive logs past the thresholds; fires once per episode of collapse.

    ``update`` returns a warning record the ``patience``-th consecutive time the
    collapse level exceeds ``collapse_threshold``, the effective rank falls below
    ``min_effective_rank``, or it falls below ``rank_drop`` times the highest effective
    rank of the run so far (dimensional collapse: a few directions left, not one;
    0 turns this test off); a healthy log re-arms it. Logs before step ``grace_steps``
    raise the run's highest rank but never count towards the patience (a freshly
    initialised predictor's transient: BYOL with a linear predictor at EMA rate 0.9 passes
    collapse level 0.8 for steps 20-50, then recovers; docs/sweep.md#grace).
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

    def reasons(self, scalars: Mapping[str, float]) -> list[str]:
        """Which thresholds ``scalars`` cross, in words (empty when healthy)."""
        found = []
        level = scalars.get("collapse_level")
        if level is not None and level > self.collapse_threshold:
            found.append(f"collapse level {level:.3f} > {self.collapse_threshold:g}")
        rank = scalars.get("effective_rank")
        if rank is not None and rank < self.min_effective_rank:
            found.append(f"effective rank {rank:.3f} < {self.min_effective_rank:g}")
        elif rank is not None and rank < self.rank_drop * self.peak_rank:
            found.append(f"effective rank {rank:.3f} < {self.rank_drop:g} x its highest "
                         f"in this run ({self.peak_rank:.3f}): dimensional collapse")
        return found

    def update(self, step: int, scalars: Mapping[str, float]) -> WarningLine | None:
        reasons = self.reasons(scalars)
        rank = scalars.get("effective_rank")
        if rank is not None and math.isfinite(rank):
            self.peak_rank = max(self.peak_rank, rank)
        if not reasons or step < self.grace_steps:
            self.streak, self.fired = 0, False
            return None
        self.streak += 1
        if self.fired or self.streak < self.patience:
            return None
        self.fired = True
        return {
            "step": step,
            "message": f"collapse suspected at step {step}: "
            + "; ".join(reasons)
            + f" for {self.streak} consecutive logs",
            "reasons": reasons,
            "collapse_level": scalars.get("collapse_level"),
            "effective_rank": scalars.get("effective_rank"),
            "consecutive_logs": self.streak,
            "likely_causes": likely_causes(self.context),
        }
