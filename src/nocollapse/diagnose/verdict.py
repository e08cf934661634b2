"""Whether a branch averts the collapse: the warning's own thresholds over the horizon.

Each branch's diagnostics records are replayed through the run's
:class:`~nocollapse.monitor.warnings.EarlyWarning` (its thresholds, its patience, the
run's highest effective rank up to the snapshot and its random-init reference). A
branch *collapses* when that warning fires within the horizon or its last
:data:`FINAL_LOGS` logs (median) are past a threshold; the control must collapse (else
the collapse did not reproduce and no branch can avert it); a branch that does not
collapse while the control does *averts* it. The margin of an averting branch is how far
its final figures stay inside the thresholds: the smallest of its effective rank over the
rank threshold, ``(1 - level) / (1 - collapse_threshold)`` and ``sigma2_est`` over its
floor (a factor: 1 is on the threshold). Averting branches rank by margin.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from nocollapse.monitor import MonitorConfig
from nocollapse.monitor.warnings import EarlyWarning, number
from nocollapse.runio.records import JSONObject, is_finite_number

FINAL_LOGS = 3
AVERTS, COLLAPSES, FAILED = "averts", "collapses", "failed"


@dataclass(frozen=True)
class Verdict:
    """A branch's outcome over the horizon."""

    collapsed: bool
    warning_step: int | None  # the step the replayed warning fired (None: never)
    margin: float | None  # the final figures' smallest factor inside the thresholds
    effective_rank: float | None  # final (median of the last FINAL_LOGS logs)
    collapse_level: float | None
    sigma2: float | None
    logs: int


def judge(records: list[JSONObject], monitor: MonitorConfig, peak_before: float,
          reference_rank: float | None) -> Verdict:
    """Replay ``records`` (a branch's ``metrics.jsonl`` lines) through the run's warning."""
    logs = [r for r in records if is_finite_number(r.get("effective_rank"))
            and not r.get("final")]
    warning = EarlyWarning(monitor.collapse_threshold, monitor.min_effective_rank,
                           monitor.patience, {}, rank_drop=monitor.rank_drop,
                           peak_rank=peak_before, reference_rank=reference_rank,
                           sigma2_floor=monitor.sigma2_floor,
                           reference_drop=monitor.reference_drop)
    fired: int | None = None
    for record in logs:
        step = number(record, "step")
        line = warning.update(int(step) if step is not None else 0, record)
        if line is not None and fired is None:
            fired = line["step"]
    tail = logs[-FINAL_LOGS:]
    rank, level, sigma2 = (_median(tail, key) for key in
                           ("effective_rank", "collapse_level", "sigma2_est"))
    final_suspect = bool(tail) and bool(warning.reasons(
        {k: v for k, v in (("effective_rank", rank), ("collapse_level", level),
                           ("sigma2_est", sigma2)) if v is not None}))
    margin = _margin(monitor, warning, rank, level, sigma2)
    collapsed = fired is not None or final_suspect or not logs
    return Verdict(collapsed, fired, margin, rank, level, sigma2, len(logs))


def _median(records: list[JSONObject], key: str) -> float | None:
    values = [float(v) for r in records if is_finite_number(v := r.get(key))]
    return statistics.median(values) if values else None


def _margin(monitor: MonitorConfig, warning: EarlyWarning, rank: float | None,
            level: float | None, sigma2: float | None) -> float | None:
    factors = []
    if rank is not None:
        bound = max(monitor.min_effective_rank, monitor.rank_drop * warning.peak_rank,
                    monitor.reference_drop * (warning.reference_rank or 0.0))
        factors.append(rank / bound if bound > 0 else math.inf)
    if level is not None and monitor.collapse_threshold < 1:
        factors.append((1 - level) / (1 - monitor.collapse_threshold))
    if sigma2 is not None and monitor.sigma2_floor > 0:
        factors.append(sigma2 / monitor.sigma2_floor)
    finite = [f for f in factors if math.isfinite(f)]
    return min(finite) if finite else None
