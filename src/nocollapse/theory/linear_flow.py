"""tian2021 full-matrix gradient flow of the linear non-contrastive model (docs/theory.md#tian2021).

State: predictor ``Wp`` ``(n2, n2)``, online encoder ``W`` ``(n2, n1)``, target ``Wa``
``(n2, n1)``. :func:`flow_derivatives` is Lemma 1 (with switches for the ablations of
Theorem 2), :func:`flow_rhs` the same on a flattened state for ``scipy.integrate.solve_ivp``,
and :func:`integrate_flow` a fixed-step Euler/RK4 integrator that records snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nocollapse.errors import ConfigError, check_choice, check_nonnegative


@dataclass
class FlowConfig:
    """Constants and switches of the matrix flow.

    Attributes:
        X: ``(n1, n1)`` data covariance of the mean view.
        Xp: ``(n1, n1)`` augmentation covariance ``X'``.
        alpha_p: predictor learning-rate ratio.
        eta: weight decay.
        beta: EMA rate of the target; ``None`` means SimSiam (``Wa = W`` at all times).
        stop_grad: keep the stop-gradient on the target branch; ``False`` uses the
            Theorem 2 gradient (only with SimSiam, ``Wa = W``).
        predictor: ``False`` fixes ``Wp = I`` (no predictor).
        symmetric: symmetrise the predictor update (the isotropic-case flow of Theorem 3).
    """

    X: np.ndarray
    Xp: np.ndarray
    alpha_p: float = 1.0
    eta: float = 0.0
    beta: float | None = None
    stop_grad: bool = True
    predictor: bool = True
    symmetric: bool = False
    S: np.ndarray = field(init=False, repr=False)  # X + X', cached

    def __post_init__(self) -> None:
        self.X = np.asarray(self.X, dtype=float)
        self.Xp = np.asarray(self.Xp, dtype=float)
        if self.X.shape != self.Xp.shape or self.X.ndim != 2:
            raise ConfigError(f"X {self.X.shape} and X' {self.Xp.shape} must be equal squares")
        check_nonnegative("alpha_p", self.alpha_p)
        check_nonnegative("eta", self.eta)
        if self.beta is not None:
            check_nonnegative("beta", self.beta)
        if not self.stop_grad and self.beta is not None:
            raise ConfigError(
                "stop_grad=False is defined for SimSiam only (Theorem 2, Wa = W); "
                f"got beta={self.beta}, use beta=None"
            )
        self.S = self.X + self.Xp

    @classmethod
    def isotropic(cls, n1: int, sigma2: float, **kwargs: object) -> FlowConfig:
        """``X = I``, ``X' = sigma2 I`` in dimension ``n1``."""
        check_nonnegative("sigma2", sigma2)
        eye = np.eye(n1)
        return cls(X=eye, Xp=sigma2 * eye, **kwargs)  # type: ignore[arg-type]


def flow_derivatives(
    Wp: np.ndarray, W: np.ndarray, Wa: np.ndarray, cfg: FlowConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(dWp/dt, dW/dt, dWa/dt)`` of Lemma 1 (stop-gradient) or Theorem 2 (without).

    Shapes: ``Wp (n2, n2)``, ``W, Wa (n2, n1)``. With ``cfg.beta is None`` the target is
    ``W`` itself (``Wa`` is ignored and its derivative is ``dW/dt``).
    """
    if cfg.beta is None:
        Wa = W
    residual = -Wp @ W @ cfg.S + Wa @ cfg.X  # (n2, n1): -(Wp W (X+X') - Wa X)
    if cfg.predictor:
        dWp = cfg.alpha_p * residual @ W.T
        if cfg.symmetric:
            dWp = 0.5 * (dWp + dWp.T)
        dWp = dWp - cfg.eta * Wp
    else:
        dWp = np.zeros_like(Wp)
    dW = Wp.T @ residual - cfg.eta * W
    if not cfg.stop_grad:
        # Theorem 2: the target branch also carries gradient, d/dW of -tr(Wp W X W^T)
        # gains Wp W X and 1/2 tr(W S W^T) gives -W S.
        dW = dW + Wp @ W @ cfg.X - W @ cfg.S
    dWa = dW if cfg.beta is None else cfg.beta * (W - Wa)
    return dWp, dW, dWa


def pack(Wp: np.ndarray, W: np.ndarray, Wa: np.ndarray) -> np.ndarray:
    """Flatten ``(Wp, W, Wa)`` into one vector (the ``solve_ivp`` state)."""
    return np.concatenate([Wp.ravel(), W.ravel(), Wa.ravel()])


def unpack(y: np.ndarray, n1: int, n2: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of :func:`pack` for dimensions ``n1, n2``."""
    k = n2 * n2
    m = n2 * n1
    return y[:k].reshape(n2, n2), y[k : k + m].reshape(n2, n1), y[k + m :].reshape(n2, n1)


def flow_rhs(t: float, y: np.ndarray, cfg: FlowConfig, n2: int) -> np.ndarray:
    """``solve_ivp`` right-hand side on the packed state (``args=(cfg, n2)``)."""
    n1 = cfg.X.shape[0]
    return pack(*flow_derivatives(*unpack(y, n1, n2), cfg))


@dataclass
class FlowTrajectory:
    """Snapshots of the matrix flow: ``times (T,)``, ``Wp (T, n2, n2)``, ``W, Wa (T, n2, n1)``."""

    times: np.ndarray
    Wp: np.ndarray
    W: np.ndarray
    Wa: np.ndarray


def integrate_flow(
    Wp0: np.ndarray,
    W0: np.ndarray,
    cfg: FlowConfig,
    dt: float,
    steps: int,
    *,
    Wa0: np.ndarray | None = None,
    method: str = "rk4",
    record_every: int = 1,
) -> FlowTrajectory:
    """Integrate the flow with ``steps`` fixed steps of size ``dt`` (``"euler"`` or ``"rk4"``).

    Records the state every ``record_every`` steps, including the start and the end.
    ``Wa0`` defaults to ``W0`` (the target starts as a copy of the online encoder).
    """
    check_choice("method", method, ("euler", "rk4"))
    n1, n2 = cfg.X.shape[0], W0.shape[0]
    y = pack(np.array(Wp0, float), np.array(W0, float), np.array(W0 if Wa0 is None else Wa0, float))

    def f(state: np.ndarray) -> np.ndarray:
        return flow_rhs(0.0, state, cfg, n2)

    saved, times = [y.copy()], [0.0]
    for step in range(1, steps + 1):
        if method == "euler":
            y = y + dt * f(y)
        else:
            k1 = f(y)
            k2 = f(y + 0.5 * dt * k1)
            k3 = f(y + 0.5 * dt * k2)
            k4 = f(y + dt * k3)
            y = y + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
        if step % record_every == 0 or step == steps:
            saved.append(y.copy())
            times.append(step * dt)
    parts = [unpack(s, n1, n2) for s in saved]
    return FlowTrajectory(
        times=np.asarray(times),
        Wp=np.stack([p[0] for p in parts]),
        W=np.stack([p[1] for p in parts]),
        Wa=np.stack([p[2] for p in parts]),
    )


def theorem2_hessian(Wp: np.ndarray, cfg: FlowConfig) -> np.ndarray:
    """``H = X' ⊗ (Wp^T Wp + I) + X ⊗ (Wp - I)^T (Wp - I) + eta I`` (Theorem 2).

    Without stop-gradient and with ``Wp`` held fixed, ``d vec(W)/dt = -H vec(W)``
    (column-major ``vec``); shape ``(n1 n2, n1 n2)``.
    """
    n2 = Wp.shape[0]
    eye = np.eye(n2)
    A = Wp - eye
    H = np.kron(cfg.Xp, Wp.T @ Wp + eye) + np.kron(cfg.X, A.T @ A)
    return H + cfg.eta * np.eye(H.shape[0])
