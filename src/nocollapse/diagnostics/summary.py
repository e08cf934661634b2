"""One call that computes the cheap collapse scalars for logging during training."""

from __future__ import annotations

import numpy as np

from nocollapse.diagnostics._arrays import ArrayInput, as_embeddings, as_square
from nocollapse.diagnostics.alignment import (
    asymmetry,
    commutator_norm,
    eigen_alignment,
    predictor_spectrum,
)
from nocollapse.diagnostics.embedding import (
    collapse_level,
    correlation,
    correlation_eigenvalues,
    embedding_std,
    embeddings_from_linear,
    linear_correlation,
    view_alignment,
)
from nocollapse.diagnostics.label_free import rankme
from nocollapse.diagnostics.spectrum import dims_above, effective_rank, participation_ratio
from nocollapse.diagnostics.uniformity import wang_isola_uniformity, wasserstein_uniformity


def summarize(
    z1: ArrayInput,
    z2: ArrayInput | None = None,
    F: ArrayInput | None = None,
    Wp: ArrayInput | None = None,
    max_uniformity_samples: int = 256,
    relative_threshold: float = 1e-2,
    max_alignment_dim: int = 512,
) -> dict[str, float]:
    """Cheap collapse scalars of a batch, keyed by the names written to ``metrics.jsonl``.

    The spectra (``effective_rank`` of the centred batch's singular values,
    ``participation_ratio`` and ``dims_above`` of its covariance eigenvalues) share one
    eigendecomposition, of the smaller of the ``(d, d)`` covariance and the ``(2B, 2B)``
    Gram matrix; ``rankme`` (of the uncentred batch) and ``uniformity_wasserstein`` need one
    more each. Without ``Wp`` the cost is
    ``O(B d min(B, d) + min(B, d)^3)``; ``Wp`` adds ``O(d^3)`` (its spectrum and the
    commutator), and ``eigen_alignment`` (two more ``eigh`` and a matching) is left
    out when ``d > max_alignment_dim``.

    Args:
        z1: ``(B, d)`` embeddings of the first view (numpy or torch).
        z2: optional ``(B, d)`` embeddings of the second view, rows paired with ``z1``;
            adds ``alignment`` and joins ``z1`` in the spectra.
        F: optional ``(d, d)`` correlation (e.g. DirectPred's running ``F_hat``); by
            default the uncentred correlation of the batch.
        Wp: optional ``(d, d)`` linear predictor; adds its spectrum range, asymmetry,
            commutator norm and eigen-alignment with ``F``.
        max_uniformity_samples: Wang-Isola uniformity uses at most this many rows,
            so the cost stays ``O(B d^2 + d^3)`` plus ``O(max^2 d)``.
        relative_threshold: for ``dims_above``.
        max_alignment_dim: largest ``d`` for which ``eigen_alignment`` is computed.
    """
    a = as_embeddings(z1, "z1")
    stacked = a if z2 is None else np.concatenate([a, as_embeddings(z2, "z2")], axis=0)
    eigenvalues = correlation_eigenvalues(stacked, centered=True)
    out = {
        "embedding_std": embedding_std(stacked),
        "collapse_level": collapse_level(stacked),
        # sqrt of the covariance eigenvalues = singular values of the centred batch / sqrt(B)
        "effective_rank": effective_rank(np.sqrt(eigenvalues)),
        "rankme": rankme(stacked),  # of the uncentred batch, as Garrido et al. define it
        "participation_ratio": participation_ratio(eigenvalues),
        "dims_above": float(dims_above(eigenvalues, relative_threshold)),
        "uniformity_wang_isola": wang_isola_uniformity(a, max_samples=max_uniformity_samples),
        "uniformity_wasserstein": wasserstein_uniformity(stacked),
    }
    if z2 is not None:
        out["alignment"] = view_alignment(a, z2)
    if Wp is not None:
        w = as_square(Wp, "Wp")
        f = correlation(stacked) if F is None else as_square(F, "F")
        p = predictor_spectrum(w)
        out.update(
            predictor_max=float(p[0]),
            predictor_min=float(p[-1]),
            predictor_asymmetry=asymmetry(w),
            commutator=commutator_norm(f, w),
        )
        if w.shape[0] <= max_alignment_dim:
            out["eigen_alignment"] = eigen_alignment(f, w)
    return out


def summarize_linear(
    W: ArrayInput,
    Wp: ArrayInput | None = None,
    X: ArrayInput | None = None,
    n_samples: int = 512,
    seed: int = 0,
) -> dict[str, float]:
    """:func:`summarize` for the theory engine's linear network, so that simulated and
    trained networks are diagnosed identically.

    ``W``: ``(n2, n1)``; ``Wp``: optional ``(n2, n2)``; ``X``: optional ``(n1, n1)``
    input covariance (identity by default). The batch is ``n_samples`` draws of
    ``z = W x`` with a fixed ``seed`` (the same inputs at every call, so a trajectory's
    curves are smooth); ``F`` is the exact ``W X W^T``, not the batch estimate.
    """
    z = embeddings_from_linear(W, n_samples, np.random.default_rng(seed), X)
    F = linear_correlation(W, X) if Wp is not None else None
    return summarize(z, F=F, Wp=Wp)
