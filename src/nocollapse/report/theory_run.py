"""The linear theory read off a training run: predictor power law and ``eta / eta_c``.

docs/theory.md#theory-in-a-run. From ``spectra.jsonl`` (``F_eigenvalues`` and
``Wp_in_F_basis``, written for a linear or spectral predictor) the predictor's gains
``p_j`` against ``F_hat``'s eigenvalues ``s_j`` and the fitted power law per epoch;
from ``metrics.jsonl`` (``sigma2_est``, ``tau_est``, ``scale_est``) and the run's weight
decay the ratio ``eta / eta_c``. Reads only; the figure is drawn by
:mod:`nocollapse.report.figures`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from nocollapse.diagnostics import PowerLaw, critical_eta, power_law_fit, smoothed
from nocollapse.errors import ConfigError
from nocollapse.report.runs import Run, is_number_list, number
from nocollapse.runio import ESTIMATE_KEYS, SCALE_KEY

Row = TypeVar("Row")

POWER_LAW_FLOOR = 1e-3  # modes with s_j <= this times s_max carry no signal: not fitted


@dataclass(frozen=True)
class PredictorSpectrum:
    """One epoch's ``(s_j, p_j)`` pairs (``s`` descending) and their fit (``None``: too few)."""

    epoch: int
    s: np.ndarray
    p: np.ndarray
    fit: PowerLaw | None


def spectrum_epochs(run: Run, wanted: Sequence[int] | None = None, count: int = 3) -> list[int]:
    """Epochs with ``Wp_in_F_basis``: the ``wanted`` ones, else first, middle and last."""
    available = [epoch for epoch, _, _ in _readable_spectra(run)]
    if wanted:
        return [e for e in wanted if e in available]
    if len(available) <= count:
        return available
    return sorted({available[round(i * (len(available) - 1) / (count - 1))]
                   for i in range(count)})


def predictor_spectra(run: Run, epochs: Sequence[int]) -> list[PredictorSpectrum]:
    """The :class:`PredictorSpectrum` of each of ``epochs`` present in ``run.spectra``."""
    by_epoch = {epoch: (s, p) for epoch, s, p in _readable_spectra(run)}
    out = []
    for epoch in epochs:
        if epoch not in by_epoch:
            continue
        s, p = by_epoch[epoch]
        try:
            fit: PowerLaw | None = power_law_fit(s, p, POWER_LAW_FLOOR)
        except ConfigError:  # fewer than three modes with signal: plotted, not fitted
            fit = None
        out.append(PredictorSpectrum(epoch, s, p, fit))
    return out


def _readable_spectra(run: Run) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """``(epoch, F_eigenvalues, Wp_in_F_basis)`` of the spectra lines that hold both as
    equally long lists of numbers; a damaged or hand-edited line is passed over."""
    out = []
    for index, record in enumerate(run.spectra):
        epoch = record.get("epoch", index)
        s, p = _numbers(record.get("F_eigenvalues")), _numbers(record.get("Wp_in_F_basis"))
        if (isinstance(epoch, int | float) and not isinstance(epoch, bool) and math.isfinite(epoch)
                and s is not None and p is not None and len(s) and s.shape == p.shape):
            out.append((int(epoch), s, p))
    return out


def _numbers(value: object) -> np.ndarray | None:
    """``value`` as a 1-D float array when it is a list of numbers, else ``None``."""
    return np.asarray(value, dtype=float) if is_number_list(value) else None


def weight_decay(run: Run) -> float | None:
    """The optimiser's weight decay from the run's ``config.yaml`` (the theory's ``eta``)."""
    optim = run.config.get("optim")
    value = optim.get("weight_decay") if isinstance(optim, dict) else None
    return float(value) if isinstance(value, int | float) else None


def critical_decay_rows(run: Run) -> list[dict[str, float]]:
    """Per epoch: medians of ``sigma2_est``, ``tau_est``, ``scale_est``; ``eta_c``, ``eta / eta_c``.

    ``scale`` is ``nan`` in runs that did not log ``scale_est`` (older runs, learners
    without ``output_layer``); their ``eta_c`` is then read at ``x = 1``.
    """
    eta = weight_decay(run)
    grouped: dict[int, list[tuple[float, float, float]]] = {}
    for record in run.metrics:
        sigma2, tau = (record.get(key) for key in ESTIMATE_KEYS)
        scale = record.get(SCALE_KEY)
        if isinstance(sigma2, int | float) and isinstance(tau, int | float):
            epoch = math.floor(number(record.get("epoch"), 0.0))
            grouped.setdefault(epoch, []).append(
                (float(sigma2), float(tau),
                 float(scale) if isinstance(scale, int | float) else math.nan))
    rows = []
    for epoch, values in sorted(grouped.items()):
        sigma2, tau, scale = (smoothed((v[i] for v in values), window=len(values))
                              for i in range(3))
        known = math.isfinite(scale) and scale > 0
        eta_c = critical_eta(sigma2, tau, scale if known else 1.0)
        rows.append({"epoch": epoch, "logs": len(values), "sigma2": sigma2, "tau": tau,
                     "scale": scale if known else math.nan, "eta_c": eta_c,
                     "ratio": math.nan if eta is None else eta / eta_c})
    return rows


def markdown_section(run: Run, spectra: Sequence[PredictorSpectrum]) -> str:
    """The report.md section: the power law per epoch and the ``eta / eta_c`` table."""
    parts = [f"### `{run.label}`", ""]
    if spectra:
        parts += ["Predictor gain `p_j = u_j^T Wp u_j` against the eigenvalue `s_j` of "
                  "`F_hat` (`u_j` its eigenvectors), fitted as `p = c s^k` over the modes "
                  f"with `s_j > {POWER_LAW_FLOOR:g} s_max`; DirectPred sets `k = 1/2`.", "",
                  "| epoch | exponent k | R^2 | c | modes fitted |", "|---|---|---|---|---|"]
        for item in spectra:
            fit = item.fit
            cells = (["-"] * 4 if fit is None else
                     [f"{fit.exponent:.3f}", f"{fit.r2:.3f}", f"{fit.prefactor:.3g}",
                      str(fit.modes)])
            parts.append(f"| {item.epoch} | " + " | ".join(cells) + " |")
        parts.append("")
    rows = critical_decay_rows(run)
    if rows:
        eta = weight_decay(run)
        parts += [f"Weight decay `eta = {_g(eta)}` against `eta_c = x tau^2 / (4 (1 + sigma^2))` "
                  "with the data scale `x`, `sigma^2` and `tau` estimated from the run "
                  "(medians per epoch; `x` not measured: `-`, read as 1).", "",
                  "| epoch | logs | x est. | sigma^2 est. | tau est. | eta_c | eta / eta_c |",
                  "|---|---|---|---|---|---|---|"]
        parts += [f"| {r['epoch']} | {r['logs']} | {_g(r['scale'])} | {r['sigma2']:.3g} | "
                  f"{r['tau']:.3g} | {r['eta_c']:.3g} | {_g(r['ratio'])} |"
                  for r in _thin(rows)]
        parts.append("")
    return "\n".join(parts) if len(parts) > 2 else ""


def _thin(rows: list[Row], limit: int = 12) -> list[Row]:
    """At most ``limit`` rows, evenly spread, the first and last kept."""
    if len(rows) <= limit:
        return rows
    picks = sorted({round(i * (len(rows) - 1) / (limit - 1)) for i in range(limit)})
    return [rows[i] for i in picks]


def _g(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.3g}"
