"""What the collapse monitor measures on a batch and at an epoch's end, from tensors.

:func:`fast_scalars` (every log, on the embeddings' device), :func:`covariance_eigenvalues`
(the eigendecomposition behind it) and :func:`spectra_record` (one ``spectra.jsonl`` line:
the format is documented in :mod:`nocollapse.runio` and docs/run-directory.md). Pure
functions: no files, no state; :class:`nocollapse.monitor.CollapseMonitor` calls them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from nocollapse import diagnostics
from nocollapse.runio.records import SpectraLine


class Views(Protocol):
    """What the monitor reads of a training step: the two views' embeddings ``(B, d)``.

    Read when present (``getattr``): ``p1`` (view 1's prediction) and ``t1``, ``t2`` (the
    target branch's outputs), for the ``tau`` and data-scale estimates.
    """

    @property
    def z1(self) -> torch.Tensor: ...

    @property
    def z2(self) -> torch.Tensor | None: ...


class SpectralSource(Protocol):
    """What the monitor reads at an epoch's end: ``F_hat`` and ``Wp`` (``(d, d)``) or None."""

    def correlation(self) -> torch.Tensor | None: ...

    def predictor_matrix(self) -> torch.Tensor | None: ...


def _effective_rank(eigenvalues: np.ndarray) -> float:
    # singular values of the centred batch / sqrt(n): effective_rank is scale-free
    return diagnostics.effective_rank(np.sqrt(eigenvalues))


# Scalars of the batch's covariance spectrum (its top min(n, d) eigenvalues, descending),
# logged every diagnostics step under these keys, in this order. A new label-free figure
# computed from the same eigendecomposition is one more entry (and its key in
# runio.MONITOR_KEYS so readers know it); it costs no second decomposition.
SPECTRUM_SCALARS: dict[str, Callable[[np.ndarray], float]] = {
    "effective_rank": _effective_rank,
    "participation_ratio": diagnostics.participation_ratio,
    "dims_above": lambda eigenvalues: float(diagnostics.dims_above(eigenvalues)),
}


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
    out = {
        "embedding_std": float(std),
        "collapse_level": max(0.0, 1.0 - math.sqrt(d) * float(std)),
    }
    out.update((key, float(scalar(eigenvalues))) for key, scalar in SPECTRUM_SCALARS.items())
    out["rankme"] = _rankme(z)  # of the uncentred batch: a decomposition of its own
    if z2 is not None:
        a = torch.nn.functional.normalize(z1.detach().float(), dim=1)
        b = torch.nn.functional.normalize(z2.detach().float(), dim=1)
        out["alignment"] = float((a - b).pow(2).sum(dim=1).mean())
    return out


def _rankme(z: torch.Tensor) -> float:
    """RankMe (Garrido et al. 2023) of the uncentred batch, from its Gram matrix on ``z``'s
    device: only ``min(n, d)`` singular values leave it."""
    zd = z.double()
    gram = zd @ zd.T if zd.shape[0] < zd.shape[1] else zd.T @ zd
    singular = torch.linalg.eigvalsh(gram).clamp_min(0.0).sqrt().cpu().numpy()
    return diagnostics.label_free.smoothed_rank(singular, diagnostics.label_free.RANKME_EPS)


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
    result: np.ndarray = values.cpu().numpy()
    return result


def _finite_or_none(value: torch.Tensor | None) -> np.ndarray | None:
    """``value`` as float64 numpy; ``None`` when absent or not finite (a diverged run,
    which the loop stops with its own message: an eigendecomposition would raise)."""
    if value is None:
        return None
    array = _as_numpy(value)
    return array if np.all(np.isfinite(array)) else None


def _as_numpy(value: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def spectra_record(
    learner: SpectralSource, batch: tuple[torch.Tensor, torch.Tensor | None] | None,
    alignment_max_dim: int = 128, why_no_predictor: str | None = None,
) -> SpectraLine:
    """Eigenvalues (descending) of ``F_hat``, ``Wp`` and the batch correlation, and more.

    ``learner.correlation()`` and ``learner.predictor_matrix()`` may return ``None``
    (no running correlation, non-linear or no predictor); ``batch``: the last
    ``(z1, z2)`` seen, ``(B, d)`` each, or ``None``.
    """
    F = _finite_or_none(learner.correlation())
    Wp = _finite_or_none(learner.predictor_matrix())
    out: SpectraLine = {}
    if F is not None:
        out["F_eigenvalues"] = np.linalg.eigvalsh((F + F.T) / 2)[::-1].tolist()
    if Wp is not None:
        out["Wp_eigenvalues"] = diagnostics.predictor_spectrum(Wp).tolist()
        out["Wp_asymmetry"] = diagnostics.asymmetry(Wp)
    if Wp is None and why_no_predictor:  # report.md quotes it beside the missing figures
        out["skipped"] = {key: why_no_predictor for key in ("Wp_eigenvalues", "alignment")}
    if F is not None and Wp is not None and F.shape == Wp.shape:
        # relative ||[F, Wp]||_F / (||F||_F ||Wp||_F) (docs/theory.md#vocabulary)
        out["commutator"] = diagnostics.commutator_norm(F, Wp)
        out["Wp_in_F_basis"] = diagnostics.predictor_in_basis(F, Wp)[1].tolist()
        if F.shape[0] <= alignment_max_dim:
            # 4 decimals: a heat map needs no more, and d = 128 stays ~110 kB per epoch
            out["alignment"] = np.round(diagnostics.alignment_matrix(F, Wp), 4).tolist()
    views = [] if batch is None else [_finite_or_none(v) for v in batch if v is not None]
    if views and all(v is not None for v in views):
        z1, z2 = views[0], (views[1] if len(views) == 2 else None)
        assert z1 is not None
        z = z1 if z2 is None else np.concatenate([z1, z2])
        out["Z_eigenvalues"] = diagnostics.correlation_eigenvalues(z).tolist()
        # The predictor figures need F and Wp of the embeddings' width (a linear predictor).
        usable = F is not None and Wp is not None and F.shape == Wp.shape == (z.shape[1],) * 2
        out["summary"] = diagnostics.summarize(
            z1, z2, F if usable else None, Wp if usable else None
        )
    return out
