"""bao2023 linear SimSiam: sampled-data gradient descent with analytic gradients (numpy).

docs/theory.md#bao2023. Identity backbone, projection ``Phi`` (``(n2, n1)``), predictor
``Psi`` (``(n2, n2)``), ``x ~ N(0, I_n1)``, views ``x_i = x + sigma xi_i``,
``z1 = Phi x1``, ``p = Psi z1``, target ``z2 = Phi x2`` under stop-gradient, weight
decay ``rho`` on both matrices, equal learning rates. Losses: ``"l2"`` and ``"cosine"``
of :mod:`nocollapse.theory.halvagal2023_sim`, with its constants (:data:`LOSS_CONVENTIONS`:
half the loss table's ``l2``, its ``cosine`` plus 1). The reduced theory is in
:mod:`nocollapse.theory.bao2023`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nocollapse.errors import (
    TrainingDivergedError,
    check_choice,
    check_nonnegative,
    check_positive,
    check_positive_int,
)
from nocollapse.theory.halvagal2023_sim import LOSS_CONVENTIONS as TOY_CONVENTIONS
from nocollapse.theory.halvagal2023_sim import base_loss_grads

# the toy's gradients, so the toy's constants (loss table: diagnostics.loss_definitions)
LOSS_CONVENTIONS = {name: TOY_CONVENTIONS[name] for name in ("l2", "cosine")}
LOSSES = tuple(LOSS_CONVENTIONS)


@dataclass(frozen=True)
class SimSiamConfig:
    """Linear SimSiam settings (defaults: docs/theory.md#bao2023 numerical check).

    ``samples`` data points per step. ``psi_init="aligned"`` starts ``Psi = (Phi Phi^T)^1/2``
    so that ``s_j = p_j^2`` holds at ``t = 0`` (the reduced form's assumption);
    ``"random"`` draws ``Psi`` like ``Phi``.
    """

    n1: int = 16
    n2: int = 8
    sigma2: float = 0.5
    rho: float = 0.25
    loss: str = "cosine"
    lr: float = 0.05
    steps: int = 4000
    samples: int = 256
    init_scale: float = 1.0
    psi_init: str = "aligned"
    record_every: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        check_choice("psi_init", self.psi_init, ("aligned", "random"))
        for name in ("n1", "n2", "steps", "samples", "record_every"):
            check_positive_int(name, getattr(self, name))
        check_nonnegative("sigma2", self.sigma2)
        check_nonnegative("rho", self.rho)
        check_positive("lr", self.lr)
        check_positive("init_scale", self.init_scale)


def simsiam_grads(Phi: np.ndarray, Psi: np.ndarray, X1: np.ndarray, X2: np.ndarray,
                  loss: str) -> tuple[np.ndarray, np.ndarray]:
    """Analytic gradients of the batch loss (no weight decay), target under stop-gradient.

    Args:
        Phi: ``(n2, n1)``; Psi: ``(n2, n2)``; X1, X2: ``(B, n1)``; loss: ``"l2"|"cosine"``.

    Returns:
        ``(dL/dPhi, dL/dPsi)`` of shapes ``(n2, n1)`` and ``(n2, n2)``.
    """
    z1, z2 = X1 @ Phi.T, X2 @ Phi.T
    g_p = base_loss_grads(z1 @ Psi.T, z2, loss)[0]
    b = X1.shape[0]
    return (g_p @ Psi).T @ X1 / b, g_p.T @ z1 / b


@dataclass
class SimSiamTrajectory:
    """Recorded state: ``steps, times (= lr * step)`` shape ``(T,)``; ``eigenvalues`` of
    ``Phi Phi^T`` (descending) and ``p`` (eigenvalues of ``(Psi + Psi^T)/2``, descending),
    shape ``(T, n2)``; ``norm_phi, norm_psi`` Frobenius norms, shape ``(T,)``."""

    steps: np.ndarray
    times: np.ndarray
    eigenvalues: np.ndarray
    p: np.ndarray
    norm_phi: np.ndarray
    norm_psi: np.ndarray


def initial_state(cfg: SimSiamConfig) -> tuple[np.ndarray, np.ndarray, np.random.Generator]:
    """``Phi0 = init_scale randn(n2, n1)/sqrt(n1)`` and ``Psi0`` per ``cfg.psi_init``."""
    rng = np.random.default_rng(cfg.seed)
    Phi = rng.standard_normal((cfg.n2, cfg.n1)) * cfg.init_scale / np.sqrt(cfg.n1)
    if cfg.psi_init == "aligned":
        s, U = np.linalg.eigh(Phi @ Phi.T)
        Psi = (U * np.sqrt(np.clip(s, 0.0, None))) @ U.T
    else:
        Psi = rng.standard_normal((cfg.n2, cfg.n2)) * cfg.init_scale / np.sqrt(cfg.n2)
    return Phi, Psi, rng


def simulate_simsiam(cfg: SimSiamConfig) -> SimSiamTrajectory:
    """Sampled gradient descent with weight decay on linear SimSiam (docs/theory.md#bao2023)."""
    Phi, Psi, rng = initial_state(cfg)
    sigma = np.sqrt(cfg.sigma2)
    decay = 1.0 - cfg.lr * cfg.rho
    rec: dict[str, list[object]] = {k: [] for k in ("step", "eig", "p", "phi", "psi")}
    for step in range(cfg.steps + 1):
        if step % cfg.record_every == 0 or step == cfg.steps:
            rec["step"].append(step)
            rec["eig"].append(np.sort(np.linalg.eigvalsh(Phi @ Phi.T))[::-1])
            rec["p"].append(np.sort(np.linalg.eigvalsh((Psi + Psi.T) / 2))[::-1])
            rec["phi"].append(np.linalg.norm(Phi))
            rec["psi"].append(np.linalg.norm(Psi))
        if step == cfg.steps:
            break
        x = rng.standard_normal((cfg.samples, cfg.n1))
        X1 = x + sigma * rng.standard_normal(x.shape)
        X2 = x + sigma * rng.standard_normal(x.shape)
        g_phi, g_psi = simsiam_grads(Phi, Psi, X1, X2, cfg.loss)
        Phi = decay * Phi - cfg.lr * g_phi
        Psi = decay * Psi - cfg.lr * g_psi
        if not (np.all(np.isfinite(Phi)) and np.all(np.isfinite(Psi))):
            raise TrainingDivergedError(
                f"linear SimSiam diverged at step {step} (lr={cfg.lr}); lower lr"
            )
    steps = np.asarray(rec["step"])
    return SimSiamTrajectory(steps, cfg.lr * steps, np.asarray(rec["eig"]),
                             np.asarray(rec["p"]), np.asarray(rec["phi"]),
                             np.asarray(rec["psi"]))
