"""The per-mode quartic landscape of a linear SSL encoder (docs/theory.md#ziyin2023).

A linear encoder ``W`` (``k x n``), data covariance ``A`` (covariance of the mean
view), additive augmentation covariance ``Sigma`` and weight decay ``gamma``, with
``A`` and ``Sigma`` sharing an eigenbasis (eigenvalues ``a_i``, ``sigma_i``). Writing
``W = V diag(w) E^T`` reduces the loss to ``L = sum_i alpha_i w_i^2 + beta_i w_i^4``
(derived). Mode ``i`` is learned, ``w_i^2 = -alpha_i / (2 beta_i)``, iff
``alpha_i < 0``; otherwise it collapses to ``w_i = 0``.

Supported loss (derived, checked by :func:`gradient_descent`):

* ``"spectral"``: the spectral contrastive loss with a linear ``f``,
  ``L = -2 Tr[W A W^T] + Tr[(W (A + Sigma) W^T)^2] + gamma ||W||_F^2``, so
  ``alpha_i = gamma - 2 a_i`` and ``beta_i = (a_i + sigma_i)^2``.

Not supported, on purpose: a predictor-free L2 non-contrastive loss
``E||W x1 - W x2||^2 + gamma ||W||^2`` is quadratic (``beta_i = 0``) with its only
minimum at ``W = 0``, so it has no quartic landscape to speak of. ziyin2023's own
theorems and constants are open (docs/theory.md#open-items): this module is "the per-mode quartic
landscape", not a transcription of the paper.

Two ways to set the augmentation (``augmentation_model``):

* ``"additive"``: ``a_i`` is fixed and a view has variance ``a_i + sigma_i``; the
  augmentation then changes ``beta_i`` only, so it shrinks the learned ``w_i^2`` but
  never changes which modes are learned.
* ``"marginal"``: a view keeps the data variance ``d_i`` (augmented images look like
  data), so by the law of total variance the shared part is ``a_i = d_i - sigma_i``;
  stronger augmentation then collapses the weaker modes (derived).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nocollapse.errors import ConfigError, check_choice, check_nonnegative, check_positive

LOSSES = ("spectral",)
AUGMENTATION_MODELS = ("additive", "marginal")


@dataclass(frozen=True)
class CriticalPoint:
    """One critical point of a single mode's landscape ``alpha w^2 + beta w^4``.

    ``kind`` is the sign of ``d2L/dw2 = 2 alpha + 12 beta w^2``: ``"min"``, ``"max"``
    or ``"degenerate min"`` (``alpha = 0`` at ``w = 0``: flat to second order).
    """

    mode: int
    w: float
    value: float
    curvature: float
    kind: str


@dataclass(frozen=True)
class QuarticLandscape:
    """Per-mode coefficients of ``L = sum_i alpha_i w_i^2 + beta_i w_i^4``.

    Attributes (arrays of shape ``(n,)``, modes in the order given):
        loss: the loss it was derived from (see ``LOSSES``).
        a: data (mean-view) variances ``a_i >= 0``.
        sigma: augmentation variances ``sigma_i >= 0``.
        gamma: weight decay.
        alpha, beta: the quadratic and quartic coefficients (``beta_i > 0``).
    """

    loss: str
    a: np.ndarray
    sigma: np.ndarray
    gamma: float
    alpha: np.ndarray
    beta: np.ndarray

    @property
    def n_modes(self) -> int:
        return int(self.a.shape[0])

    def mode_loss(self, w: np.ndarray) -> np.ndarray:
        """``L_i(w) = alpha_i w^2 + beta_i w^4`` for every mode: ``w`` ``(m,)`` -> ``(n, m)``."""
        w = np.asarray(w, dtype=float)[None, :]
        result: np.ndarray = self.alpha[:, None] * w**2 + self.beta[:, None] * w**4
        return result

    def learned(self) -> np.ndarray:
        """Boolean ``(n,)``: the modes with ``alpha_i < 0``."""
        return self.alpha < 0

    def learned_w2(self, out_dim: int | None = None) -> np.ndarray:
        """``w_i^2`` at the global minimum, ``(n,)``: ``-alpha_i / (2 beta_i)`` or 0.

        With an encoder of only ``out_dim`` outputs the minimum keeps the ``out_dim``
        learnable modes of deepest depth ``alpha_i^2 / (4 beta_i)`` (derived: the loss
        is ``||G||^2 - Tr[G C]`` in ``G = S^{1/2} W^T W S^{1/2}``, a rank-limited
        projection of ``C``).
        """
        w2 = np.where(self.learned(), -self.alpha / (2 * self.beta), 0.0)
        if out_dim is not None and np.count_nonzero(w2) > out_dim:
            depth = np.where(self.learned(), self.alpha**2 / (4 * self.beta), -np.inf)
            keep = np.argsort(-depth, kind="stable")[:out_dim]
            mask = np.zeros_like(w2, dtype=bool)
            mask[keep] = True
            w2 = np.where(mask, w2, 0.0)
        return w2

    def learned_rank(self, out_dim: int | None = None) -> int:
        """Number of learned modes (rank of ``W`` at the global minimum)."""
        return int(np.count_nonzero(self.learned_w2(out_dim)))

    def singular_values(self, out_dim: int | None = None) -> np.ndarray:
        """Predicted singular values ``|w_i|`` of ``W`` at the minimum, ``(n,)``, descending."""
        return np.sort(np.sqrt(self.learned_w2(out_dim)))[::-1]

    def critical_points(self) -> list[CriticalPoint]:
        """Every critical point of every mode with its curvature and kind.

        ``w = 0`` always (curvature ``2 alpha``); ``w = ±sqrt(-alpha / (2 beta))`` when
        ``alpha < 0`` (curvature ``-4 alpha > 0``, a minimum). A full critical point
        picks one per mode; its index (number of descending directions in the
        per-mode coordinates) is the number of learnable modes left at 0.
        """
        points = []
        for i, (alpha, beta) in enumerate(zip(self.alpha, self.beta, strict=True)):
            kind = "min" if alpha > 0 else "max" if alpha < 0 else "degenerate min"
            points.append(CriticalPoint(i, 0.0, 0.0, 2 * alpha, kind))
            if alpha < 0:
                w = float(np.sqrt(-alpha / (2 * beta)))
                value = float(-(alpha**2) / (4 * beta))
                points += [CriticalPoint(i, s * w, value, -4 * alpha, "min") for s in (1, -1)]
        return points

    def signature(self, w: np.ndarray) -> tuple[int, int, int]:
        """``(descending, ascending, flat)`` directions of the per-mode Hessian
        ``diag(2 alpha_i + 12 beta_i w_i^2)`` at a critical point ``w`` (``(n,)``).

        In these per-mode coordinates; the full matrix has further (rotation)
        directions, which can only add descending ones.
        """
        w = np.asarray(w, dtype=float)
        gradient = 2 * self.alpha * w + 4 * self.beta * w**3
        scale = np.abs(self.alpha).max() * max(float(np.abs(w).max()), 1.0)
        if w.shape != self.a.shape or np.any(np.abs(gradient) > 1e-8 * scale):
            raise ConfigError(
                "w is not a critical point of the per-mode landscape: each w_i must be 0 "
                "or ±sqrt(-alpha_i / (2 beta_i)) (see critical_points())"
            )
        curvature = 2 * self.alpha + 12 * self.beta * w**2
        tol = 1e-12 * max(float(np.abs(curvature).max()), 1.0)
        return (int(np.sum(curvature < -tol)), int(np.sum(curvature > tol)),
                int(np.sum(np.abs(curvature) <= tol)))

    def kind(self, w: np.ndarray) -> str:
        """``"min"``, ``"max"`` or ``"saddle"`` from :meth:`signature` (flat directions
        count as ascending: ``beta > 0`` makes a flat mode a quartic minimum)."""
        descending, _, _ = self.signature(w)
        if descending == 0:
            return "min"
        return "max" if descending == self.n_modes else "saddle"

    def minimum_value(self, out_dim: int | None = None) -> float:
        """Loss at the global minimum, ``-sum alpha_i^2 / (4 beta_i)`` over learned modes."""
        w2 = self.learned_w2(out_dim)
        return float(np.sum(self.alpha * w2 + self.beta * w2**2))


def make_landscape(
    data_variances: np.ndarray | list[float],
    augmentation: float | np.ndarray | list[float],
    gamma: float,
    loss: str = "spectral",
    augmentation_model: str = "additive",
) -> QuarticLandscape:
    """Build the per-mode landscape (docs/theory.md#ziyin2023) with validated inputs.

    Args:
        data_variances: ``(n,)`` positive data variances (``a_i`` for ``"additive"``,
            the single-view variance ``d_i`` for ``"marginal"``).
        augmentation: ``sigma_i``, a scalar (isotropic) or ``(n,)``, ``>= 0``; for
            ``"marginal"`` at most ``d_i``.
        gamma: weight decay, ``>= 0``.
    """
    check_choice("loss", loss, LOSSES)
    check_choice("augmentation model", augmentation_model, AUGMENTATION_MODELS)
    check_nonnegative("gamma", float(gamma))
    d = np.asarray(data_variances, dtype=float).ravel()
    if d.size == 0:
        raise ConfigError("the data spectrum is empty; give at least one variance, e.g. 1,0.5")
    for value in d:
        check_positive("data variance", float(value))
    sigma = np.broadcast_to(np.asarray(augmentation, dtype=float), d.shape).copy()
    for value in sigma:
        check_nonnegative("augmentation variance", float(value))
    if augmentation_model == "marginal":
        if np.any(sigma > d):
            raise ConfigError(
                f"augmentation variance {sigma.max():g} exceeds the data variance "
                f"{d[np.argmax(sigma - d)]:g} of a mode; valid range with the marginal model: "
                "0 <= aug <= smallest data variance (or use --aug-model additive)"
            )
        a = d - sigma
    else:
        a = d
    alpha = gamma - 2 * a
    beta = (a + sigma) ** 2
    return QuarticLandscape(loss, a, sigma, float(gamma), alpha, beta)


def mode_w2_trajectory(
    landscape: QuarticLandscape, w2_0: float | np.ndarray, times: np.ndarray
) -> np.ndarray:
    """Exact gradient flow of the per-mode quartic, ``u_i = w_i^2``, shape ``(T, n)``.

    From ``L_i = alpha_i u + beta_i u^2`` and ``dw_i/dt = -dL_i/dw_i``:
    ``du_i/dt = -4 alpha_i u_i - 8 beta_i u_i^2``, a logistic equation (derived) with
    ``u(t) = u0 e^{-4 alpha t} / (1 + 2 beta u0 (1 - e^{-4 alpha t}) / alpha)``
    (``alpha -> 0`` limit ``u0 / (1 + 8 beta u0 t)``). Learned modes rise to
    ``-alpha/(2 beta)``, collapsing ones decay as ``e^{-4 alpha t}``.
    """
    t = np.asarray(times, dtype=float)[:, None]
    u0 = np.broadcast_to(np.asarray(w2_0, dtype=float), landscape.alpha.shape)[None, :]
    alpha, beta = landscape.alpha[None, :], landscape.beta[None, :]
    safe = np.where(np.abs(alpha) > 1e-12, alpha, 1.0)
    # numerator and denominator multiplied by e^{4 alpha t}: finite for either sign
    with np.errstate(over="ignore"):
        grow = np.exp(4 * safe * t)
        logistic = u0 / (grow + 2 * beta * u0 * np.expm1(4 * safe * t) / safe)
    result: np.ndarray = np.where(np.abs(alpha) > 1e-12, logistic, u0 / (1 + 8 * beta * u0 * t))
    return result


def spectral_loss(W: np.ndarray, A: np.ndarray, Sigma: np.ndarray, gamma: float) -> float:
    """``-2 Tr[W A W^T] + Tr[(W (A+Sigma) W^T)^2] + gamma ||W||_F^2``; ``W`` ``(k, n)``."""
    gram = W @ (A + Sigma) @ W.T
    return float(-2 * np.trace(W @ A @ W.T) + np.sum(gram * gram) + gamma * np.sum(W * W))


def spectral_loss_gradient(
    W: np.ndarray, A: np.ndarray, Sigma: np.ndarray, gamma: float
) -> np.ndarray:
    """Gradient of :func:`spectral_loss`: ``-4 W A + 4 (W S W^T) W S + 2 gamma W``."""
    S = A + Sigma
    result: np.ndarray = -4 * W @ A + 4 * (W @ S @ W.T) @ W @ S + 2 * gamma * W
    return result


@dataclass
class DescentResult:
    """Full-matrix gradient descent on the landscape's loss.

    ``W``: ``(k, n)`` final weights; ``basis``: ``(n, n)`` the shared eigenbasis
    (columns) of ``A`` and ``Sigma``; ``mode_w2``: ``(n,)`` ``diag(E^T W^T W E)``,
    the learned ``w_i^2`` per mode, directly comparable with ``learned_w2``;
    ``losses``: the loss every ``record_every`` steps.
    """

    W: np.ndarray
    basis: np.ndarray
    mode_w2: np.ndarray
    losses: np.ndarray


def gradient_descent(
    landscape: QuarticLandscape,
    out_dim: int | None = None,
    steps: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    init_scale: float = 0.1,
    record_every: int = 100,
) -> DescentResult:
    """Gradient descent on the full-matrix loss, in a random eigenbasis (numpy only).

    ``A = E diag(a) E^T``, ``Sigma = E diag(sigma) E^T`` with a random orthogonal
    ``E``, ``W`` ``(out_dim, n)`` started at ``init_scale``-sized Gaussian entries.
    The default step size is ``0.2 / (largest curvature)``; the default number of
    steps gives the slowest mode (curvature ``2|alpha_i|`` or ``-4 alpha_i``) 40
    e-folds, capped at 200000. Used to check :class:`QuarticLandscape`'s predictions.
    """
    n = landscape.n_modes
    k = n if out_dim is None else out_dim
    check_positive("out_dim", k)
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.standard_normal((n, n)))[0]
    A = basis @ np.diag(landscape.a) @ basis.T
    Sigma = basis @ np.diag(landscape.sigma) @ basis.T
    alpha, beta = landscape.alpha, landscape.beta
    rates = np.where(alpha < 0, -4 * alpha, 2 * alpha)
    if lr is None:
        curvature = np.abs(rates) + 12 * beta * (landscape.learned_w2() + init_scale**2)
        lr = 0.2 / float(curvature.max())
    if steps is None:
        slowest = max(float(np.min(np.abs(rates))), 1e-12)
        steps = int(min(np.ceil(40 / (lr * slowest)), 200_000))
    W = init_scale * rng.standard_normal((k, n)) / np.sqrt(n)
    losses = []
    for step in range(steps):
        if step % record_every == 0:
            losses.append(spectral_loss(W, A, Sigma, landscape.gamma))
        W = W - lr * spectral_loss_gradient(W, A, Sigma, landscape.gamma)
    losses.append(spectral_loss(W, A, Sigma, landscape.gamma))
    mode_w2 = np.sum((W @ basis) ** 2, axis=0)
    return DescentResult(W, basis, mode_w2, np.asarray(losses))


def learned_w2_grid(
    data_variances: np.ndarray | list[float],
    gammas: np.ndarray | list[float],
    augmentations: np.ndarray | list[float],
    augmentation_model: str = "marginal",
) -> np.ndarray:
    """Predicted ``w_i^2`` over a grid, shape ``(len(gammas), len(augmentations), n)``.

    Vectorised over the grid: ``w_i^2 = max(0, 2 a_i - gamma) / (2 (a_i + sigma)^2)``
    (docs/theory.md#ziyin2023); the singular values of ``W`` are the square roots. A
    marginal-model ``sigma`` above ``d_i`` leaves no shared variance and the mode collapses.
    """
    check_choice("augmentation model", augmentation_model, AUGMENTATION_MODELS)
    d = np.asarray(data_variances, dtype=float)[None, None, :]
    g = np.asarray(gammas, dtype=float)[:, None, None]
    s = np.asarray(augmentations, dtype=float)[None, :, None]
    a = np.clip(d - s, 0.0, None) if augmentation_model == "marginal" else d + 0 * s
    result: np.ndarray = np.maximum(2 * a - g, 0.0) / (2 * (a + s) ** 2)
    return result


def rank_grid(
    data_variances: np.ndarray | list[float],
    gammas: np.ndarray | list[float],
    augmentations: np.ndarray | list[float],
    augmentation_model: str = "marginal",
) -> np.ndarray:
    """Predicted learned rank, shape ``(len(gammas), len(augmentations))``: the number of
    modes with ``alpha_i = gamma - 2 a_i(sigma) < 0``."""
    w2 = learned_w2_grid(data_variances, gammas, augmentations, augmentation_model)
    result: np.ndarray = np.count_nonzero(w2 > 0, axis=-1)
    return result
