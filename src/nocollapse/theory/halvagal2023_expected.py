"""halvagal2023's toy eigenmode rates as exact expectations over the data, without mean field.

docs/theory.md#halvagal2023-gain. The eigenmode ODEs of :mod:`nocollapse.theory.halvagal2023`
replace the per-sample norms ``|p|, |z_2|`` of the cosine losses by their RMS values
(mean field). That keeps the final spectrum to 0.2% but not the per-mode rates: a sample
with a large coordinate along a strong mode has a large ``|p|``, so the normalisation damps
the strong modes more than their mean-field factor says (at the toy's start the ratio of
true to mean-field rate runs from 1.6 on the weakest modes to 0.7 on the strongest).

Exact expectation: with ``W = U diag(sqrt s) V^T`` and ``x ~ N(0, I)``, the coordinates
``a = V^T x_1``, ``b = V^T x_2`` of the two views are i.i.d. Gaussian per mode, and the
expected flow keeps the eigenvectors (every coordinate's sign can be flipped), so

    ds_m/dt = -2 sqrt(s_m) E[ c_m (dL/dp)_m a_m ],   z_k = sqrt(s_k) a_k,  p_k = lambda_k z_k,

with ``c_m = lambda_m`` (the plain loss: ``Wp^T`` in the gradient) or 1 (IsoLoss), and
``dL/dp = p - z_2`` (l2) or ``-(z_2 / (|p| |z_2|) - <p, z_2> p / (|p|^3 |z_2|))`` (cosine).
The expectation is a Monte-Carlo average over one fixed draw of ``samples`` Gaussian
vectors (common random numbers: a smooth, deterministic right-hand side); its relative
error is of order ``samples^-1/2`` (0.4% at the default 50,000, the authors' per-step draw).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from nocollapse.errors import check_choice, check_nonnegative, check_positive, check_positive_int
from nocollapse.theory.halvagal2023_sim import AUGMENT, LOSSES

EXPECTATION_SAMPLES = 50_000  # the authors' toy notebook draws 50,000 points a step


def expected_mode_rhs(loss: str, sigma2: float, modes: int, alpha: float = 1.0,
                      augment: str = "target", samples: int = EXPECTATION_SAMPLES,
                      seed: int = 0) -> Callable[[float, np.ndarray], np.ndarray]:
    """``f(t, s)``: the exact expected ``ds_m/dt`` of the toy for ``modes`` eigenvalues ``s``.

    ``augment``: ``"target"`` (only the target view noisy, the authors' code) or ``"both"``.
    ``s`` of shape ``(modes,)``; returns the same shape. See the module docstring.
    """
    check_choice("loss", loss, LOSSES)
    check_choice("augment", augment, AUGMENT)
    check_nonnegative("sigma2", sigma2)
    check_positive("alpha", alpha)
    check_positive_int("modes", modes)
    check_positive_int("samples", samples)
    rng = np.random.default_rng(seed)
    clean = rng.standard_normal((samples, modes))
    sigma = np.sqrt(sigma2)
    a = clean + sigma * rng.standard_normal(clean.shape) if augment == "both" else clean
    b = clean + sigma * rng.standard_normal(clean.shape)
    iso = loss.startswith("isoloss")

    def rhs(t: float, s: np.ndarray) -> np.ndarray:
        s = np.clip(np.asarray(s, dtype=float), 0.0, None)
        root, lam = np.sqrt(s), s**alpha
        z1, z2 = a * root, b * root
        p = z1 * lam
        if loss.endswith("l2"):
            grad_p = p - z2
        else:
            p_norm = np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-300)
            z_norm = np.maximum(np.linalg.norm(z2, axis=1, keepdims=True), 1e-300)
            dot = np.sum(p * z2, axis=1, keepdims=True)
            grad_p = -(z2 / (p_norm * z_norm) - dot * p / (p_norm**3 * z_norm))
        factor = 1.0 if iso else lam
        result: np.ndarray = -2.0 * root * factor * np.mean(grad_p * a, axis=0)
        return result

    return rhs


def integrate_expected(s0: np.ndarray, times: np.ndarray, loss: str, sigma2: float,
                       alpha: float = 1.0, augment: str = "target",
                       samples: int = EXPECTATION_SAMPLES, seed: int = 0,
                       max_step: float = 0.25) -> np.ndarray:
    """Integrate :func:`expected_mode_rhs` from ``s0`` ``(M,)`` over ``times`` ``(T,)``: ``(T, M)``.

    Classical RK4 with steps of at most ``max_step`` ODE time: the toy's per-mode rates
    ``|d log s/dt|`` stay below 0.5 (cosine) and 2 (Euclidean) at its scale, so
    ``h |rate| <= 0.5`` and the RK4 error (``(h rate)^5 / 120`` a step) is far below the
    Monte-Carlo error.
    """
    times = np.asarray(times, dtype=float)
    s = np.asarray(s0, dtype=float).copy()
    f = expected_mode_rhs(loss, sigma2, s.size, alpha, augment, samples, seed)
    out = [s.copy()]
    for start, end in itertools.pairwise(times):
        pieces = max(1, int(np.ceil((end - start) / max_step)))
        h = (end - start) / pieces
        for _ in range(pieces):
            k1 = f(0.0, s)
            k2 = f(0.0, s + 0.5 * h * k1)
            k3 = f(0.0, s + 0.5 * h * k2)
            k4 = f(0.0, s + h * k3)
            s = s + h / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(s.copy())
    return np.asarray(out)


def expected_gain_spread(times: np.ndarray, traj: np.ndarray, loss: str, sigma2: float,
                         alpha: float = 1.0, augment: str = "target",
                         samples: int = EXPECTATION_SAMPLES, seed: int = 0) -> float:
    """The gain spread of the exact-expectation flow started where ``traj`` starts.

    Fitted as :func:`nocollapse.theory.halvagal2023.gain_measures` fits the simulation's
    (cosine: the first ``GAIN_WINDOW`` of ODE time against the moving ``lbar``; Euclidean:
    the whole run against the fixed point), at the same recorded ``times``.
    """
    from nocollapse.theory.halvagal2023 import GAIN_WINDOW, gain_spread, moving_target

    times = np.asarray(times, dtype=float)
    cosine = loss.endswith("cosine")
    end = len(times) if not cosine else min(
        len(times), int(np.searchsorted(times, times[0] + GAIN_WINDOW, side="right")) + 1)
    flow = integrate_expected(np.asarray(traj, dtype=float)[0], times[:end], loss, sigma2,
                              alpha, augment, samples, seed)
    if cosine:
        return gain_spread(times[:end], flow, moving_target(flow, alpha), alpha, GAIN_WINDOW)
    online = sigma2 if augment == "both" else 0.0
    return gain_spread(times[:end], flow, 1.0 / (1.0 + online), alpha)
