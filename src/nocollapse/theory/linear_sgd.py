"""Sampled-data SGD of the tian2021 linear model with the L2 or the cosine loss.

Each step draws ``x ~ N(0, X)`` and two views ``x1, x2 = x + N(0, X')`` (``X, X'`` of
:class:`~nocollapse.theory.linear_flow.FlowConfig`), computes ``p = Wp W x1`` and the
target ``z2 = Wa x2`` and takes one SGD step with the analytic gradients below (numpy
has no autograd). With the L2 loss and small ``lr`` this tracks the Lemma 1 flow of
:mod:`nocollapse.theory.linear_flow` (docs/theory.md#tian2021); the step maps to ODE time
``lr`` (predictor step ``lr * alpha_p``, EMA ``lr * beta``, decay ``lr * eta``).
"""

from __future__ import annotations

import numpy as np

from nocollapse.diagnostics.loss_definitions import LossConvention, half_of
from nocollapse.errors import check_choice, check_positive
from nocollapse.theory.linear_flow import FlowConfig, FlowTrajectory

# each loss by the loss table's name (diagnostics.loss_definitions), with its constants:
# half the table's l2 (the Lemma 1 flow's), the table's cosine as it is
LOSS_CONVENTIONS: dict[str, LossConvention] = {
    "l2": half_of("l2"),
    "cosine": LossConvention("cosine"),
}
LOSSES = tuple(LOSS_CONVENTIONS)


def loss_value(P: np.ndarray, Z2: np.ndarray, loss: str) -> float:
    """The batch loss ``LOSS_CONVENTIONS[loss]``: half the table's l2, or its cosine.

    ``P, Z2``: ``(B, n2)``.
    """
    if loss == "l2":
        return float(0.5 * np.mean(np.sum((P - Z2) ** 2, axis=1)))
    return float(-np.mean(np.sum(_unit(P) * _unit(Z2), axis=1)))


def _unit(A: np.ndarray) -> np.ndarray:
    result: np.ndarray = A / np.maximum(np.linalg.norm(A, axis=1, keepdims=True), 1e-12)
    return result


def output_grads(P: np.ndarray, Z2: np.ndarray, loss: str) -> tuple[np.ndarray, np.ndarray]:
    """``(dL/dP, dL/dZ2)`` of :func:`loss_value`, each ``(B, n2)``.

    Cosine: ``d/dp -<p^, z^> = -(z^ - <p^, z^> p^) / |p|`` and symmetrically for ``z2``
    (the component along ``p`` vanishes: the loss is scale invariant).
    """
    B = P.shape[0]
    if loss == "l2":
        diff = (P - Z2) / B
        return diff, -diff
    p_norm = np.maximum(np.linalg.norm(P, axis=1, keepdims=True), 1e-12)
    z_norm = np.maximum(np.linalg.norm(Z2, axis=1, keepdims=True), 1e-12)
    ph, zh = P / p_norm, Z2 / z_norm
    cos = np.sum(ph * zh, axis=1, keepdims=True)
    return -(zh - cos * ph) / (p_norm * B), -(ph - cos * zh) / (z_norm * B)


def parameter_grads(
    Wp: np.ndarray, W: np.ndarray, Wa: np.ndarray, X1: np.ndarray, X2: np.ndarray,
    loss: str, cfg: FlowConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """``(dL/dWp, dL/dW)`` on a batch of views ``X1, X2`` ``(B, n1)``, without weight decay.

    With ``cfg.stop_grad`` false (SimSiam only) the target branch ``z2 = W x2`` also
    carries gradient to ``W``; with ``cfg.predictor`` false ``Wp`` gets none.
    """
    Z1 = X1 @ W.T
    target = W if cfg.beta is None else Wa
    P, Z2 = Z1 @ Wp.T, X2 @ target.T
    gP, gZ2 = output_grads(P, Z2, loss)
    gWp = gP.T @ Z1 if cfg.predictor else np.zeros_like(Wp)
    gW = Wp.T @ gP.T @ X1
    if not cfg.stop_grad:
        gW = gW + gZ2.T @ X2
    return gWp, gW


def sgd_simulate(
    Wp0: np.ndarray,
    W0: np.ndarray,
    cfg: FlowConfig,
    *,
    lr: float,
    steps: int,
    samples: int,
    loss: str = "l2",
    seed: int = 0,
    record_every: int = 1,
) -> FlowTrajectory:
    """SGD on fresh Gaussian minibatches of ``samples`` inputs a step; snapshots as a flow.

    ``times`` are ODE time ``lr * step``; ``cfg.symmetric`` symmetrises the predictor step.
    """
    check_choice("loss", loss, LOSSES)
    check_positive("lr", lr)
    check_positive("steps", steps)
    check_positive("samples", samples)
    rng = np.random.default_rng(seed)
    n1 = cfg.X.shape[0]
    data = np.linalg.cholesky(cfg.X + 1e-12 * np.eye(n1)).T  # x = N(0,I) @ data
    aug = np.linalg.cholesky(cfg.Xp + 1e-12 * np.eye(n1)).T
    Wp, W = np.array(Wp0, float), np.array(W0, float)
    Wa = W.copy()
    snaps = [(0.0, Wp.copy(), W.copy(), Wa.copy())]
    for step in range(1, steps + 1):
        x = rng.standard_normal((samples, n1)) @ data
        X1 = x + rng.standard_normal((samples, n1)) @ aug
        X2 = x + rng.standard_normal((samples, n1)) @ aug
        gWp, gW = parameter_grads(Wp, W, Wa, X1, X2, loss, cfg)
        if cfg.symmetric:
            gWp = 0.5 * (gWp + gWp.T)
        if cfg.predictor:
            Wp = Wp - lr * (cfg.alpha_p * gWp + cfg.eta * Wp)
        W_new = W - lr * (gW + cfg.eta * W)
        Wa = W_new if cfg.beta is None else Wa + lr * cfg.beta * (W - Wa)
        W = W_new
        if step % record_every == 0 or step == steps:
            snaps.append((step * lr, Wp.copy(), W.copy(), Wa.copy()))
    return FlowTrajectory(
        times=np.array([s[0] for s in snaps]), Wp=np.stack([s[1] for s in snaps]),
        W=np.stack([s[2] for s in snaps]), Wa=np.stack([s[3] for s in snaps]),
    )
