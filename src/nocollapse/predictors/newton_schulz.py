"""``(F / s_max)^(1/2)`` with matrix products only: power iteration and Newton-Schulz.

DirectPred's ``Wp = (F / s_max)^(1/2) + eps I`` needs one eigenvalue and a matrix square
root, not the whole spectrum (docs/benchmarks.md, section 2):

* ``s_max``: power iteration from the previous call's top vector (``warm``), so a slowly
  moving ``F_hat`` needs a few matrix-vector products; its Rayleigh quotient ``rho`` never
  exceeds ``s_max``. ``F`` is divided by ``c = rho + sqrt(2) ||F v - rho v||`` (capped by
  the infinity norm, an upper bound always), which is ``>= s_max`` whenever ``v`` holds at
  least half its weight on the top eigenvector, so ``F / c`` has its spectrum in
  ``[0, 1]``; the root is scaled back by ``sqrt(c / rho)``.
* ``(F / c)^(1/2)``: the coupled Newton-Schulz iteration ``Y <- Y T``, ``Z <- T Z`` with
  ``T = a_k (3 I - a_k^2 Z Y) / 2``, from ``Y = F / c`` and ``Z = I`` (Higham, *Functions
  of Matrices*, eq. 6.35, stable). ``a_k`` is Chen & Chow's scaling (2014), the minimax
  cubic on the interval ``[l_k, 1]`` where the iterates' eigenvalues lie; it moves a small
  eigenvalue ~2.6x a step instead of 1.5x. Every iterate is a polynomial in ``F``, so its
  error is a function of each eigenvalue alone: :func:`sqrt_error_bound` is the largest
  ``|sqrt(max(lambda, 0)) - y_k(lambda)|`` over ``lambda`` (the scalar recursion the
  matrices follow), so ``||Y_k - (F / c)^(1/2)||_2`` is at most it, in exact arithmetic.
  Its first step costs one product (``Z = I``), the last two, the others three.
"""

from __future__ import annotations

import functools
import math

import torch

# Power iteration: matrix-vector products from a cold start / from the previous vector.
COLD_POWER_STEPS = 64
WARM_POWER_STEPS = 8
# The eigenvalues (of F / c) the error bound covers: [-1e-6, 1]. A PSD F_hat rounded to
# float32 may have slightly negative eigenvalues; one below -1e-6 s_max grows through the
# iteration (at 7 steps: error 2.4e-4 at -1e-6, 2.7e-3 at -1e-5, 0.13 at -1e-4).
NEGATIVE_FLOOR = -1e-6
_GRID = torch.cat([torch.linspace(NEGATIVE_FLOOR, 0.0, 101, dtype=torch.float64)[:-1],
                   torch.zeros(1, dtype=torch.float64),
                   torch.logspace(-14, 0, 14001, dtype=torch.float64)])


@functools.lru_cache(maxsize=32)
def schedule(iterations: int) -> tuple[float, ...]:
    """Chen & Chow's scalings ``a_k`` for ``iterations`` steps, from the first interval's
    lower end that gives the smallest :func:`sqrt_error_bound` (cached)."""
    if iterations < 1:
        raise ValueError(f"iterations={iterations} must be >= 1")
    best = min((_bound(_scalings(low, iterations)), low)
               for low in torch.logspace(-5, -0.3, 60, dtype=torch.float64).tolist())
    return _scalings(best[1], iterations)


def sqrt_error_bound(iterations: int) -> float:
    """The largest ``|sqrt(max(lambda, 0)) - y(lambda)|`` after ``iterations`` steps of
    :func:`schedule`, over ``lambda`` in ``[NEGATIVE_FLOOR, 1]`` (a slightly negative
    eigenvalue: a PSD ``F`` rounded), evaluated on 14,000 log-spaced points (the map is
    smooth between them; below ``1e-14`` the error is at most ``1e-7``). It halves with
    each step up to 8 steps (5.6e-4) and stays there: beyond, the negative end dominates."""
    return _bound(schedule(iterations))


def _scalings(low: float, iterations: int) -> tuple[float, ...]:
    scalings = []
    for _ in range(iterations):
        a = math.sqrt(3.0 / (1.0 + low + low * low))
        scalings.append(a)
        low = a * low * (3.0 - a * a * low * low) / 2.0
    return tuple(scalings)


def _bound(scalings: tuple[float, ...]) -> float:
    y, z = _GRID.clone(), torch.ones_like(_GRID)
    for a in scalings:
        t = a * (3.0 - a * a * z * y) / 2.0
        y, z = y * t, t * z
    return float((_GRID.clamp_min(0).sqrt() - y).abs().max())


def top_eigenvalue(F: torch.Tensor, warm: dict[str, torch.Tensor] | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rho, c)`` for the symmetric PSD ``F``: the Rayleigh quotient of the power
    iteration's vector (``<= s_max``) and the upper bound described above. ``warm`` holds
    the previous call's vector under ``"vector"`` (read, then replaced when finite)."""
    vector = None if warm is None else warm.get("vector")
    if vector is None or vector.shape != F.shape[:1]:
        # the column of the largest diagonal entry: never orthogonal to the top eigenvector
        # of a PSD matrix whose top eigenvector has weight on that coordinate
        v, steps = F[:, int(F.diagonal().argmax())].clone(), COLD_POWER_STEPS
    else:
        v, steps = vector.to(F), WARM_POWER_STEPS
    for _ in range(steps):
        v = F @ v
        v = v / v.norm().clamp_min(torch.finfo(F.dtype).tiny)
    Fv = F @ v
    rho = v @ Fv
    residual = (Fv - rho * v).norm()
    upper = torch.minimum(rho + math.sqrt(2.0) * residual, F.abs().sum(dim=1).max())
    if warm is not None and bool(torch.isfinite(v).all()):
        warm["vector"] = v
    return rho, upper


def normalised_sqrt(F: torch.Tensor, iterations: int,
                    warm: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """``(F / s_max)^(1/2)`` of the symmetric PSD ``F`` (``(d, d)``) in ``F``'s dtype, by
    :func:`top_eigenvalue` and ``iterations`` coupled Newton-Schulz steps: within
    ``sqrt(c / rho) * sqrt_error_bound(iterations)`` of the exact root in exact arithmetic.
    A zero ``F`` gives zeros, a non-finite one NaN."""
    rho, upper = top_eigenvalue(F, warm)
    tiny = torch.finfo(F.dtype).tiny
    eye = torch.eye(F.shape[0], dtype=F.dtype, device=F.device)
    y = F / upper.clamp_min(tiny)
    z: torch.Tensor | None = None  # I
    scalings = schedule(iterations)
    for step, a in enumerate(scalings):
        w = y if z is None else z @ y
        t = (1.5 * a) * eye - (0.5 * a ** 3) * w
        y = y @ t
        if step < len(scalings) - 1:
            z = t if z is None else t @ z
    return y * (upper / rho.clamp_min(tiny)).clamp_min(1.0).sqrt()
