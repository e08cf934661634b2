"""halvagal2023 toy model: sampled-data gradient descent with analytic gradients (numpy).

docs/theory.md#halvagal2023 ("Toy model", "IsoLoss"). The encoder is ``z = W x`` with ``W`` of
shape ``(M, N)``, data ``x ~ N(0, I_N)``, two views ``x_i = x + sigma xi_i``. The
predictor is the closed form ``Wp = U diag(s_m^alpha) U^T`` of ``W W^T = U diag(s_m) U^T``;
it is recomputed every step and never differentiated. The target ``z2`` is under
stop-gradient unless ``stop_grad=False``.

Loss convention (:data:`LOSS_CONVENTIONS`, in the terms of the loss table
:mod:`nocollapse.diagnostics.loss_definitions`): every loss here has the theory's scale 1/2,
so that one step of size ``lr`` advances the eigenmode ODEs of
:mod:`nocollapse.theory.halvagal2023` by ODE time ``lr``: half the table's ``l2`` and
``isoloss-l2``, the table's ``cosine`` plus 1, half its ``isoloss-cosine``. The surrogates
are halved with their losses, which keeps the identity ``grad_z L_iso = grad_p L`` exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nocollapse.diagnostics.loss_definitions import LossConvention, half_of
from nocollapse.errors import (
    ConfigError,
    TrainingDivergedError,
    check_choice,
    check_nonnegative,
    check_positive,
    check_positive_int,
)

# each loss by the table's name, and how its constants map onto the table's row
LOSS_CONVENTIONS: dict[str, LossConvention] = {
    "l2": half_of("l2"),
    "isoloss-l2": half_of("isoloss-l2"),
    "cosine": LossConvention("cosine", constant=1.0),  # 1 - cos
    "isoloss-cosine": half_of("isoloss-cosine"),
}
LOSSES = tuple(LOSS_CONVENTIONS)
AUGMENT = ("target", "both")
_EPS = 1e-12


@dataclass(frozen=True)
class ToyConfig:
    """Settings of the toy simulation (defaults: docs/theory.md#halvagal2023, toy reproduction).

    ``lr=None`` picks 1e-2 for the Euclidean losses and 0.1 for the cosine losses.
    ``augment``: ``"target"`` (the authors' toy code: ``x1 = x``, ``x2 = x + sigma xi``)
    or ``"both"`` (the paper's statement: ``x_i = x + sigma xi_i``).
    ``samples`` is the number of data points drawn per step (the authors used 2e4).
    """

    n: int = 15
    m: int = 10
    sigma2: float = 0.01
    loss: str = "l2"
    lr: float | None = None
    steps: int = 1500
    samples: int = 4000
    alpha: float = 1.0
    stop_grad: bool = True
    predictor: bool = True
    init_scale: float = 0.25
    record_every: int = 10
    seed: int = 0
    augment: str = "target"

    def __post_init__(self) -> None:
        check_choice("loss", self.loss, LOSSES)
        check_choice("augment", self.augment, AUGMENT)
        for name in ("n", "m", "steps", "samples", "record_every"):
            check_positive_int(name, getattr(self, name))
        check_nonnegative("sigma2", self.sigma2)
        check_positive("alpha", self.alpha)
        check_positive("init_scale", self.init_scale)
        if self.lr is not None:
            check_positive("lr", self.lr)
        if self.loss.startswith("isoloss") and not self.stop_grad:
            raise ConfigError(
                f"loss={self.loss!r} with stop_grad=False is undefined: IsoLoss is built on a "
                "stop-gradient target; use loss='l2' or 'cosine' to drop the stop-gradient"
            )

    @property
    def step_size(self) -> float:
        """The learning rate, with the authors' toy default when ``lr`` is None."""
        if self.lr is not None:
            return self.lr
        return 0.1 if self.loss.endswith("cosine") else 1e-2


def closed_form_predictor(W: np.ndarray, alpha: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``Wp = U diag(s^alpha) U^T`` from ``W W^T = U diag(s) U^T`` (docs/theory.md#halvagal2023).

    Args:
        W: shape ``(M, N)``.
        alpha: exponent of the eigenvalues (toy: 1).

    Returns:
        ``(Wp, s)``: ``Wp`` of shape ``(M, M)``, symmetric PSD; ``s`` of shape ``(M,)``,
        the eigenvalues of ``W W^T`` in ascending order, clipped at 0.
    """
    s, U = np.linalg.eigh(W @ W.T)
    s = np.clip(s, 0.0, None)
    return (U * s**alpha) @ U.T, s


def base_loss(p: np.ndarray, z2: np.ndarray, kind: str) -> float:
    """The batch mean of the loss ``LOSS_CONVENTIONS[kind]`` (module docstring).

    Args:
        p, z2: shape ``(B, M)``.
        kind: ``"l2"`` or ``"cosine"``.
    """
    if kind == "l2":
        return float(0.5 * np.mean(np.sum((p - z2) ** 2, axis=1)))
    cos = np.sum(p * z2, axis=1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(z2, axis=1) + _EPS)
    return float(np.mean(1.0 - cos))


def base_loss_grads(p: np.ndarray, z2: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample gradients of :func:`base_loss` (without the 1/B) w.r.t. ``p`` and ``z2``.

    Cosine: ``dL/dp = -(z2_hat - c p_hat) / |p|`` and symmetrically for ``z2``, with
    ``c = cos(p, z2)``; the ``p``-gradient is orthogonal to ``p``.

    Returns:
        ``(g_p, g_z2)``, each of shape ``(B, M)``.
    """
    if kind == "l2":
        diff = p - z2
        return diff, -diff
    np_ = np.linalg.norm(p, axis=1, keepdims=True) + _EPS
    nz = np.linalg.norm(z2, axis=1, keepdims=True) + _EPS
    ph, zh = p / np_, z2 / nz
    c = np.sum(ph * zh, axis=1, keepdims=True)
    return -(zh - c * ph) / np_, -(ph - c * zh) / nz


def iso_surrogate(z: np.ndarray, z_ref: np.ndarray, z2: np.ndarray, Wp: np.ndarray,
                  kind: str) -> float:
    """The IsoLoss surrogate of docs/theory.md#halvagal2023, halved, as a function of ``z``.

    Every ``sg(...)`` of the definition (docs/theory.md#isoloss) is evaluated at ``z_ref`` (with
    ``p_ref = Wp z_ref``), so finite differences in ``z`` at ``z = z_ref`` give the
    surrogate's gradient, which equals :func:`base_loss_grads`' ``g_p`` at ``p = p_ref``
    (divided by B).

        Euclidean-Iso: 1/2 mean || z - sg(z2 + z - p) ||^2
        Cosine-Iso:   -mean[ <z, z2>/sg(|p||z2|) - 1/2 sg(<p,z2>/(|p|^3 |z2|)) |Wp^1/2 z|^2 ]

    Args:
        z, z_ref, z2: shape ``(B, M)``; Wp: shape ``(M, M)`` symmetric PSD.
        kind: ``"l2"`` or ``"cosine"``.
    """
    p_ref = z_ref @ Wp
    if kind == "l2":
        target = z2 + z_ref - p_ref
        return float(0.5 * np.mean(np.sum((z - target) ** 2, axis=1)))
    n_p = np.linalg.norm(p_ref, axis=1)
    n_z = np.linalg.norm(z2, axis=1)
    coef = np.sum(p_ref * z2, axis=1) / (n_p**3 * n_z)
    quad = np.sum((z @ Wp) * z, axis=1)
    return float(-np.mean(np.sum(z * z2, axis=1) / (n_p * n_z) - 0.5 * coef * quad))


def encoder_grad(W: np.ndarray, Wp: np.ndarray, X1: np.ndarray, X2: np.ndarray, loss: str,
                 stop_grad: bool = True) -> np.ndarray:
    """Analytic gradient of the batch loss w.r.t. ``W`` (``Wp`` held constant).

    Ordinary loss: ``dL/dz1 = Wp^T g_p``; IsoLoss drops the ``Wp^T`` (``dL/dz1 = g_p``).
    Without stop-gradient the target branch adds ``g_z2^T X2``.

    Args:
        W: ``(M, N)``; Wp: ``(M, M)`` symmetric; X1, X2: ``(B, N)`` the two views.
        loss: one of :data:`LOSSES`.

    Returns:
        shape ``(M, N)``.
    """
    kind = loss.removeprefix("isoloss-")
    z1, z2 = X1 @ W.T, X2 @ W.T
    g_p, g_z2 = base_loss_grads(z1 @ Wp, z2, kind)
    g_z1 = g_p if loss.startswith("isoloss") else g_p @ Wp
    grad = g_z1.T @ X1
    if not stop_grad:
        grad += g_z2.T @ X2
    result: np.ndarray = grad / X1.shape[0]
    return result


@dataclass
class ToyTrajectory:
    """Recorded state of a toy simulation.

    Attributes:
        steps: shape ``(T,)``, step indices at which the state was recorded.
        times: shape ``(T,)``, ODE time ``lr * step``.
        eigenvalues: shape ``(T, M)``, eigenvalues ``s_m`` of ``W W^T``, descending.
        frob2: shape ``(T,)``, ``||W||_F^2``.
        W0, W: the initial and final encoder, ``(M, N)``.
    """

    steps: np.ndarray
    times: np.ndarray
    eigenvalues: np.ndarray
    frob2: np.ndarray
    W0: np.ndarray
    W: np.ndarray


def simulate_toy(cfg: ToyConfig, W0: np.ndarray | None = None) -> ToyTrajectory:
    """Sampled-data gradient descent on the toy model (docs/theory.md#halvagal2023).

    Each step draws ``cfg.samples`` fresh points and two views, recomputes the
    closed-form predictor (``Wp = I`` when ``cfg.predictor`` is False) and takes one
    step ``W <- W - lr grad``. ``W0`` defaults to ``randn(M, N) * init_scale``.
    """
    rng = np.random.default_rng(cfg.seed)
    if W0 is None:
        W0 = rng.standard_normal((cfg.m, cfg.n)) * cfg.init_scale
    if W0.shape != (cfg.m, cfg.n):
        raise ConfigError(f"W0 has shape {W0.shape}; expected (m, n) = ({cfg.m}, {cfg.n})")
    W = np.array(W0, dtype=float)
    sigma, lr = np.sqrt(cfg.sigma2), cfg.step_size
    eye = np.eye(cfg.m)
    rec_steps, eigs, frob = [], [], []
    for step in range(cfg.steps + 1):
        if step % cfg.record_every == 0 or step == cfg.steps:
            rec_steps.append(step)
            eigs.append(np.sort(np.linalg.eigvalsh(W @ W.T))[::-1])
            frob.append(float(np.sum(W * W)))
        if step == cfg.steps:
            break
        Wp = closed_form_predictor(W, cfg.alpha)[0] if cfg.predictor else eye
        x = rng.standard_normal((cfg.samples, cfg.n))
        X1 = x + sigma * rng.standard_normal(x.shape) if cfg.augment == "both" else x
        X2 = x + sigma * rng.standard_normal(x.shape)
        W -= lr * encoder_grad(W, Wp, X1, X2, cfg.loss, cfg.stop_grad)
        if not np.all(np.isfinite(W)):
            raise TrainingDivergedError(
                f"toy simulation diverged at step {step} (lr={lr}); lower lr"
            )
    steps = np.asarray(rec_steps)
    return ToyTrajectory(steps, lr * steps, np.asarray(eigs), np.asarray(frob), W0, W)
