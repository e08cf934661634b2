"""The exact-expectation eigenmode flow of halvagal2023's toy (docs/theory.md#halvagal2023-gain).

The original is the toy's sampled gradient itself (fmi-basel/implicit-var-reg's
notebooks/toy_networks.ipynb defines it per sample; here through
``halvagal2023_sim.encoder_grad``, which its own tests check against finite differences):
averaged over many samples and projected on the eigenvectors of ``W W^T``,
``ds_m/dt = -2 u_m^T G W^T u_m``.
"""

from __future__ import annotations

import numpy as np
import pytest

from nocollapse.theory.halvagal2023 import mode_rhs
from nocollapse.theory.halvagal2023_expected import expected_mode_rhs
from nocollapse.theory.halvagal2023_sim import closed_form_predictor, encoder_grad

SIGMA2 = 0.01


def _sampled_rates(W: np.ndarray, loss: str, draws: int, seed: int) -> np.ndarray:
    Wp, _ = closed_form_predictor(W, 1.0)
    _, U = np.linalg.eigh(W @ W.T)
    rng = np.random.default_rng(seed)
    G = np.zeros_like(W)
    for _ in range(draws):
        x = rng.standard_normal((20_000, W.shape[1]))
        G += encoder_grad(W, Wp, x, x + np.sqrt(SIGMA2) * rng.standard_normal(x.shape), loss,
                          True)
    G /= draws
    return -2.0 * np.einsum("im,ij,kj,km->m", U, G, W, U)


@pytest.mark.parametrize("loss", ["cosine", "isoloss-cosine", "l2"])
def test_expected_rates_match_the_sampled_gradient(loss: str) -> None:
    W = np.random.default_rng(0).standard_normal((10, 15)) * 0.25  # the toy's start
    s = np.linalg.eigvalsh(W @ W.T)  # ascending, as U's columns above
    exact = expected_mode_rhs(loss, SIGMA2, 10, samples=100_000, seed=3)(0.0, s)
    sampled = _sampled_rates(W, loss, draws=5, seed=4)
    # two independent Monte Carlo means of 1e5 points each: relative errors ~ 1/sqrt(1e5)
    # of the rates' scale, so 5% of the largest rate leaves a wide margin
    np.testing.assert_allclose(exact, sampled, atol=0.05 * np.max(np.abs(sampled)))


def test_the_mean_field_ode_misstates_the_cosine_rates_but_not_the_euclidean() -> None:
    W = np.random.default_rng(0).standard_normal((10, 15)) * 0.25
    s = np.linalg.eigvalsh(W @ W.T)
    for loss, exact_is_mean_field in (("l2", True), ("isoloss-cosine", False)):
        exact = expected_mode_rhs(loss, SIGMA2, 10, samples=100_000, seed=3)(0.0, s)
        mean_field = mode_rhs(loss, SIGMA2)(0.0, s)
        # compare away from the cosine's moving target, where both rates are small
        far = np.abs(mean_field) > 0.2 * np.max(np.abs(mean_field))
        ratio = exact[far] / mean_field[far]
        if exact_is_mean_field:
            np.testing.assert_allclose(ratio, 1.0, atol=0.03)
        else:  # the per-sample normalisation damps strong modes: a spread well above 1
            assert ratio.max() / ratio.min() > 1.5
