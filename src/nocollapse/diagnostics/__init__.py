"""Collapse diagnostics: pure functions, numpy array or torch tensor in, floats out.

Shapes: embeddings ``z`` are ``(B, d)``; ``F`` and ``Wp`` are ``(d, d)``. Everything
is computed in float64 with numpy/scipy; torch is never imported. A linear
network's ``W`` from :mod:`nocollapse.theory` is diagnosed through
:func:`embeddings_from_linear` / :func:`summarize_linear` with the same functions.
"""

from nocollapse.diagnostics.alignment import (
    alignment_matrix,
    asymmetry,
    commutator_norm,
    eigen_alignment,
    predictor_spectrum,
    symmetric_part,
)
from nocollapse.diagnostics.embedding import (
    collapse_level,
    correlation,
    correlation_eigenvalues,
    embedding_std,
    embeddings_from_linear,
    linear_correlation,
    singular_values,
    view_alignment,
)
from nocollapse.diagnostics.label_free import alpha_req, lidar, rankme
from nocollapse.diagnostics.linear_theory import (
    PowerLaw,
    augmentation_ratio,
    critical_eta,
    power_law_fit,
    predictor_in_basis,
    target_ratio,
)
from nocollapse.diagnostics.run_estimates import (
    ESTIMATE_WINDOW,
    DataModes,
    data_modes,
    data_scale,
    mode_critical_etas,
    smoothed,
    target_online_ratio,
    theory_time,
)
from nocollapse.diagnostics.spectrum import (
    dims_above,
    effective_rank,
    participation_ratio,
)
from nocollapse.diagnostics.summary import summarize, summarize_linear
from nocollapse.diagnostics.uniformity import wang_isola_uniformity, wasserstein_uniformity

__all__ = [
    "ESTIMATE_WINDOW",
    "DataModes",
    "PowerLaw",
    "alignment_matrix",
    "alpha_req",
    "asymmetry",
    "augmentation_ratio",
    "collapse_level",
    "commutator_norm",
    "correlation",
    "correlation_eigenvalues",
    "critical_eta",
    "data_modes",
    "data_scale",
    "dims_above",
    "effective_rank",
    "eigen_alignment",
    "embedding_std",
    "embeddings_from_linear",
    "lidar",
    "linear_correlation",
    "mode_critical_etas",
    "participation_ratio",
    "power_law_fit",
    "predictor_in_basis",
    "predictor_spectrum",
    "rankme",
    "singular_values",
    "smoothed",
    "summarize",
    "summarize_linear",
    "symmetric_part",
    "target_online_ratio",
    "target_ratio",
    "theory_time",
    "view_alignment",
    "wang_isola_uniformity",
    "wasserstein_uniformity",
]
