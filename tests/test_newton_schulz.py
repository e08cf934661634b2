"""DirectPred without an eigendecomposition: power iteration + coupled Newton-Schulz.

The exact reference is float64 ``eigh``. The bound under test is the one the iteration
count gives (``sqrt_error_bound``): every iterate is a polynomial in ``F``, so the matrix
error is the scalar recursion's error at each eigenvalue, recomputed here from the
definition (``_scalar_root``), not read from the module.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from _numeric import eigh_error, normalised_error, sqrt_function_error, unit_roundoff
from nocollapse.errors import ConfigError
from nocollapse.predictors import build_predictor
from nocollapse.predictors import newton_schulz as ns

pytestmark = pytest.mark.numerical  # products through BLAS; tolerances from the dtype


def _scalar_root(lam: torch.Tensor, steps: int) -> torch.Tensor:
    """``y_k(lambda)``: the coupled iteration on 1 x 1 matrices (Higham eq. 6.35, scaled)."""
    y, z = lam.clone(), torch.ones_like(lam)
    for a in ns.schedule(steps):
        t = a * (3 - a * a * z * y) / 2
        y, z = y * t, t * z
    return y


def _with_spectrum(s: torch.Tensor, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(len(s), len(s), generator=gen, dtype=torch.float64))
    return (U * s) @ U.T


def _exact(F: torch.Tensor) -> torch.Tensor:
    s, U = torch.linalg.eigh(F.double())
    s = s.clamp_min(0)
    return (U * (s / s.max()).sqrt()) @ U.T


def _worst_eigenvalue(steps: int) -> float:
    lam = torch.logspace(-12, 0, 20001, dtype=torch.float64)
    return float(lam[(lam.sqrt() - _scalar_root(lam, steps)).abs().argmax()])


def test_bound_falls_with_the_step_count_and_matches_the_scalar_recursion() -> None:
    bounds = [ns.sqrt_error_bound(k) for k in range(3, 9)]
    assert all(b2 < b1 / 1.8 for b1, b2 in itertools.pairwise(bounds)), bounds
    lam = torch.logspace(-12, 0, 20001, dtype=torch.float64)
    for k in (4, 7):  # the module's grid maximum is the recursion's, to the grid's resolution
        direct = float((lam.sqrt() - _scalar_root(lam, k)).abs().max())
        assert direct == pytest.approx(ns.sqrt_error_bound(k), rel=1e-3)


@pytest.mark.parametrize("steps", [5, 7])
def test_float64_iteration_is_within_the_bound_and_the_bound_is_attained(steps: int) -> None:
    # spectrum: the top, the recursion's worst eigenvalue, seven decades, exact zeros
    worst = _worst_eigenvalue(steps)
    s = torch.cat([torch.tensor([1.0, worst]), torch.logspace(-7, -0.1, 40),
                   torch.zeros(6)]).double()
    F = _with_spectrum(s) * 3.0  # any scale: the matrix is normalised by s_max
    rho, upper = ns.top_eigenvalue(F)
    top = float(s.max()) * 3.0
    assert float(rho) <= top * (1 + 1e-12) <= float(upper) * (1 + 1e-12)
    error = float(torch.linalg.matrix_norm(ns.normalised_sqrt(F, steps) - _exact(F), 2))
    # the iteration's bound at F / c, scaled back by sqrt(c / rho); rho's own error; the
    # float64 products (far below the first term)
    bound = (math.sqrt(float(upper / rho)) * ns.sqrt_error_bound(steps)
             + (math.sqrt(top / float(rho)) - 1) + 1e3 * unit_roundoff(torch.float64))
    assert error <= bound, (error, bound)
    assert error >= 0.8 * ns.sqrt_error_bound(steps)  # the worst eigenvalue is in F
    fewer = float(torch.linalg.matrix_norm(ns.normalised_sqrt(F, steps - 2) - _exact(F), 2))
    assert fewer > bound  # two steps fewer do not meet this count's bound


def test_float32_iteration_stays_within_the_bound_plus_a_float32_solver_error() -> None:
    # the production path: float32 products on a float32 F_hat with rank 3/4 of its width
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(48, 64, generator=gen) @ torch.randn(64, 64, generator=gen)
    F = z.T @ z / 48
    top = float(torch.linalg.eigvalsh(F.double())[-1])
    error = float((ns.normalised_sqrt(F, 7).double() - _exact(F)).abs().max())
    # the float64 iteration's bound (above), plus the float32 computation treated as a
    # backward-stable solver's (d eps ||F||, as eigh32 in test_predictors) through the root
    solver = sqrt_function_error(normalised_error(eigh_error(top, 64), top))
    assert error <= 1.01 * ns.sqrt_error_bound(7) + solver, (error, solver)


def test_power_iteration_starts_warm_and_its_vector_is_kept() -> None:
    # a gap of 2 at the top: the Rayleigh quotient's error shrinks as 2^(-2 x steps)
    s = torch.cat([torch.ones(1), torch.linspace(0.01, 0.5, 31)]).double()
    F = _with_spectrum(s)
    warm: dict[str, torch.Tensor] = {}
    rho, _ = ns.top_eigenvalue(F, warm)
    assert float(rho) == pytest.approx(1.0, rel=1e-12)  # 64 steps from the largest diagonal
    first = warm["vector"].clone()
    moved = F + 1e-3 * _with_spectrum(torch.rand(32, dtype=torch.float64), seed=1)
    rho2, upper2 = ns.top_eigenvalue(moved, warm)
    exact = float(torch.linalg.eigvalsh(moved)[-1])
    assert float(rho2) <= exact * (1 + 1e-12) <= float(upper2) * (1 + 1e-12)
    assert float(rho2) == pytest.approx(exact, rel=1e-8)  # 8 warm steps suffice
    assert not torch.equal(first, warm["vector"])  # replaced by the new vector


def test_zero_and_non_finite_correlations() -> None:
    assert torch.equal(ns.normalised_sqrt(torch.zeros(5, 5), 7), torch.zeros(5, 5))
    bad = torch.eye(5)
    bad[0, 0] = math.nan
    warm: dict[str, torch.Tensor] = {}
    assert torch.isnan(ns.normalised_sqrt(bad, 7, warm)).all()
    assert "vector" not in warm  # a NaN vector is not kept for the next call


def test_directpred_solver_newton_schulz_matches_eigh_and_resumes_exactly() -> None:
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(96, 32, generator=gen) @ torch.randn(32, 32, generator=gen)
    fast = build_predictor("directpred", 32, eps=0.1, solver="newton-schulz", background=False)
    exact = build_predictor("directpred", 32, eps=0.1, solver="eigh", background=False)
    for pred in (fast, exact):
        pred.update_correlation(z)
        pred.update_correlation(z.flip(0) * 0.9)
    F = fast.correlation.F_hat
    top = float(torch.linalg.eigvalsh(F.double())[-1])
    solver = sqrt_function_error(normalised_error(eigh_error(top, 32), top))
    gap = float((fast.matrix() - exact.matrix()).abs().max())
    assert gap <= 1.01 * ns.sqrt_error_bound(7) + solver + 2 * unit_roundoff()
    assert fast.warm_vector.norm() == pytest.approx(1.0)  # kept in the state dict
    copy = build_predictor("directpred", 32, eps=0.1, solver="newton-schulz", background=False)
    copy.load_state_dict(fast.state_dict())
    for pred in (fast, copy):
        pred.update_correlation(z[:48])
    assert torch.equal(fast.matrix(), copy.matrix())  # the same warm start after a resume


def test_subtract_needs_the_spectrum() -> None:
    with pytest.raises(ConfigError, match="subtract needs F_hat's spectrum"):
        build_predictor("directpred", 8, solver="newton-schulz", subtract=0.1)
    with pytest.raises(ConfigError, match="positive integer"):
        build_predictor("directpred", 8, solver="newton-schulz", ns_steps=0)
