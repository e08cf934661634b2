"""The closed-form predictor per view, no lag, as fmi-basel/implicit-var-reg computes it.

The reference is written here from the definition in implicit-var-reg's DirectPred
method (solo/methods/directpred.py, read, not copied): the correlation ``C`` starts at
zeros; for each view, in order, ``C <- tau C + (1 - tau) z^T z / B`` (``z`` the online
projector output, detached), then ``s, U = eig(C)``, ``s <- clamp(s, 0) / max(s) + eps``,
``Wp = U diag(s^alpha) U^T`` and that view's prediction is ``p = z Wp``. View 1 is thus
predicted with the matrix built after its own update, view 2 with the one after both.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nocollapse.errors import ConfigError
from nocollapse.losses.isoloss import isoloss_cosine
from nocollapse.methods import SiameseLearner, learner_config
from nocollapse.predictors import build_predictor


def _reference_matrix(C: np.ndarray, eps: float, alpha: float) -> np.ndarray:
    s, U = np.linalg.eigh(C)
    s = np.clip(s, 0.0, None) / s.max() + eps
    return (U * s**alpha) @ U.T


def _learner(method: str, **overrides: object) -> SiameseLearner:
    torch.manual_seed(0)
    config = learner_config(method, proj_hidden_dim=32, proj_dim=8, solver="eigh", **overrides)
    return SiameseLearner(config, 1, 16)


@pytest.mark.parametrize("method", ["isoloss", "directcopy"])
def test_each_view_is_predicted_with_the_matrix_built_after_its_own_update(method: str) -> None:
    learner = _learner(method)
    options = learner.config.predictor_options
    tau, eps, alpha = float(options["rho"]), float(options.get("eps", 0.0)), (
        0.5 if method == "isoloss" else 1.0)
    if method == "directcopy":
        eps = 0.25  # the kind's default (docs/theory.md#directcopy)
    C = np.zeros((8, 8))
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        x1, x2 = (torch.randn(32, 1, 16, 16, generator=gen) for _ in range(2))
        out = learner(x1, x2)
        for z, p in ((out.z1, out.p1), (out.z2, out.p2)):
            z64 = z.double().numpy()
            C = tau * C + (1 - tau) * z64.T @ z64 / z64.shape[0]
            expected = z64 @ _reference_matrix(C, eps, alpha)
            # F_hat is a float32 buffer (1e-7 relative per update); B = 32 > d = 8 keeps
            # every s_j away from 0, so the matrix function moves by a few times that
            np.testing.assert_allclose(p.double().numpy(), expected, rtol=1e-4,
                                       atol=1e-4 * np.abs(expected).max())
    # the matrix left for evaluation and the diagnostics is the one after both views
    np.testing.assert_allclose(learner.predictor_matrix().double().numpy(),
                               _reference_matrix(C, eps, alpha), rtol=1e-4, atol=1e-5)


def test_isoloss_uses_each_views_own_matrix_in_the_loss() -> None:
    learner = _learner("isoloss")
    gen = torch.Generator().manual_seed(2)
    x1, x2 = (torch.randn(32, 1, 16, 16, generator=gen) for _ in range(2))
    out = learner(x1, x2)
    C = np.zeros((8, 8))
    matrices = []
    for z in (out.z1, out.z2):
        z64 = z.double().numpy()
        C = 0.5 * C + 0.5 * z64.T @ z64 / z64.shape[0]
        matrices.append(torch.from_numpy(_reference_matrix(C, 0.0, 0.5)).float())
    assert out.t1 is not None and out.t2 is not None
    expected = (isoloss_cosine(out.z1, out.t2, out.p1, matrices[0])
                + isoloss_cosine(out.z2, out.t1, out.p2, matrices[1]))
    torch.testing.assert_close(out.loss.detach(), expected, rtol=1e-4, atol=1e-5)


def test_the_lagged_modes_stay_available_and_bad_combinations_are_refused() -> None:
    assert build_predictor("closed-form", 8).update == "each-view"
    assert build_predictor("closed-form", 8, correlation="joint").update == "after"
    assert build_predictor("directpred", 8).update == "after"
    assert build_predictor("closed-form", 8, update="after").update == "after"
    with pytest.raises(ConfigError, match="per-view"):
        build_predictor("directpred", 8, update="each-view")
    with pytest.raises(ConfigError, match="freq=1"):
        build_predictor("closed-form", 8, freq=2)
    with pytest.raises(ConfigError, match="background"):
        build_predictor("closed-form", 8, background=True)
