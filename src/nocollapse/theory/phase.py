"""Collapse / no-collapse phase diagrams of the tian2021 dynamics (docs/theory.md#tian2021).

Two parameters span a grid; every cell is integrated to time ``t_end`` at once (one
numpy state over the whole grid, fixed-step RK4), either with the decoupled eigenmode
ODE (``model="reduced"``) or with the symmetrised full-matrix flow batched over cells
(``model="matrix"``). The analytic prediction on the invariant parabola with SimSiam
(``tau = 1``) is: a mode collapses iff ``eta > eta_c(sigma2)`` or ``p0 < p*_-(eta)``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from nocollapse.errors import ConfigError, check_choice, check_positive
from nocollapse.theory.tian2021 import critical_eta, fixed_points, mode_rhs

State = tuple[np.ndarray, ...]  # an integrator's state
# a grid's parameters: arrays over the grid, numbers, or None (unset)
Values = dict[str, Any]

AXES = ("eta", "sigma2", "p0", "alpha_p", "beta")
MODELS = ("reduced", "matrix")
DEFAULT_RANGES = {"eta": (0.0, 0.3), "sigma2": (0.0, 2.0), "p0": (0.0, 0.6),
                  "alpha_p": (0.2, 4.0), "beta": (0.0, 2.0)}
DEFAULT_FIXED = {"eta": 0.1, "sigma2": 0.5, "alpha_p": 1.0}
# With alpha_p or beta on an axis the start must leave the parabola for alpha_p to matter;
# this one collapses in about a third of the default (beta, alpha_p) grid.
OFF_PARABOLA_START = {"p0": 0.15, "s0": 0.01}
# Integration steps ``t_end / dt`` a diagram may take (500x the default 2000): the dynamics
# settle well before; a larger ``t_end`` would run for hours instead of failing.
MAX_STEPS = 1_000_000
# float64 arrays of one cell's size the RK4 integration holds at once (state, four slopes,
# temporaries): a generous count for the memory estimate that refuses oversized grids.
ARRAYS_PER_STATE = 24


@dataclass
class PhaseDiagram:
    """A phase diagram over ``x`` (columns) and ``y`` (rows).

    Attributes:
        x_name, y_name: the swept parameters.
        x: ``(nx,)``; y: ``(ny,)``.
        final_p: ``(ny, nx)`` final ``p`` (reduced) or largest final ``Wp`` eigenvalue (matrix).
        collapsed: ``(ny, nx)`` simulated collapse.
        predicted: ``(ny, nx)`` analytic collapse, or ``None`` where no formula applies
            (EMA, or a start off the invariant parabola).
        boundary: ``(k, 2)`` points ``(x, y)`` of the analytic boundary, or ``None``.
        fixed: the parameters held fixed.
    """

    x_name: str
    y_name: str
    x: np.ndarray
    y: np.ndarray
    final_p: np.ndarray
    collapsed: np.ndarray
    predicted: np.ndarray | None
    boundary: np.ndarray | None
    fixed: dict[str, float | None]

    def away_from_boundary(self, cells: int = 2) -> np.ndarray:
        """``(ny, nx)`` mask of cells whose ``(2 cells + 1)^2`` neighbourhood is one phase."""
        if self.predicted is None:
            return np.ones_like(self.collapsed, dtype=bool)
        pred = self.predicted.astype(float)
        pad = np.pad(pred, cells, mode="edge")
        lo, hi = pred.copy(), pred.copy()
        ny, nx = pred.shape
        for dy in range(2 * cells + 1):
            for dx in range(2 * cells + 1):
                window = pad[dy : dy + ny, dx : dx + nx]
                lo, hi = np.minimum(lo, window), np.maximum(hi, window)
        result: np.ndarray = lo == hi
        return result

    def agreement(self, cells: int = 2) -> tuple[int, int]:
        """``(agreeing, total)`` cells away from the analytic boundary; ``(0, 0)`` if none."""
        if self.predicted is None:
            return 0, 0
        mask = self.away_from_boundary(cells)
        return int(np.sum((self.collapsed == self.predicted) & mask)), int(mask.sum())


def _grids(x_name: str, y_name: str, x: np.ndarray, y: np.ndarray,
           fixed: dict[str, float | None]) -> dict[str, np.ndarray | float | None]:
    values: dict[str, np.ndarray | float | None] = dict(fixed)
    X, Y = np.meshgrid(x, y)
    values[x_name], values[y_name] = X, Y
    return values


def _rk4(f: Callable[[State], State], state: State, dt: float, steps: int) -> State:
    for _ in range(steps):
        k1 = f(state)
        k2 = f(tuple(s + 0.5 * dt * k for s, k in zip(state, k1, strict=True)))
        k3 = f(tuple(s + 0.5 * dt * k for s, k in zip(state, k2, strict=True)))
        k4 = f(tuple(s + dt * k for s, k in zip(state, k3, strict=True)))
        state = tuple(s + dt / 6 * (a + 2 * b + 2 * c + d)
                      for s, a, b, c, d in zip(state, k1, k2, k3, k4, strict=True))
    return state


def predicted_collapse(values: Values) -> np.ndarray | None:
    """Analytic collapse on the parabola with SimSiam, or ``None`` when it does not apply."""
    if values.get("beta") is not None or values.get("s0") is not None:
        return None
    sigma2, eta, p0 = values["sigma2"], values["eta"], values["p0"]
    p_minus, _ = fixed_points(sigma2, eta)
    beyond = np.asarray(eta > critical_eta(sigma2))
    result: np.ndarray | None = (beyond | np.nan_to_num(p0 < p_minus, nan=True).astype(bool)
                                 | np.isnan(p_minus))
    return result


def analytic_boundary(x_name: str, y_name: str, x: np.ndarray, y: np.ndarray,
                      fixed: Values) -> np.ndarray | None:
    """Points of the boundary ``eta = eta_c(sigma2)`` or ``p0 = p*_-(eta)`` in ``(x, y)``."""
    pair = {x_name, y_name}
    if fixed.get("beta") is not None or fixed.get("s0") is not None:
        return None
    if pair == {"eta", "sigma2"}:
        axis = y if y_name == "sigma2" else x
        s = np.linspace(axis[0], axis[-1], 200)
        pts = np.stack([critical_eta(s), s], axis=1)
    elif pair == {"eta", "p0"}:
        sigma2 = fixed["sigma2"]
        eta_c = float(critical_eta(sigma2))
        e = np.linspace(0.0, eta_c, 200)
        top = max(float(np.max(y if y_name == "p0" else x)), 1.0 / (2 * (1 + sigma2)))
        vertical = np.array([[eta_c, 1.0 / (2 * (1 + sigma2))], [eta_c, top]])
        pts = np.concatenate([np.stack([e, fixed_points(sigma2, e)[0]], axis=1), vertical])
    else:
        return None
    return pts if x_name == "eta" else pts[:, ::-1]  # pts list eta first


def memory_estimate(grid: int, model: str, n1: int = 6, n2: int = 3) -> int:
    """Bytes the integration of a ``grid x grid`` diagram holds at least (float64)."""
    per_cell = 3 if model == "reduced" else n2 * (n2 + 2 * n1)
    return 8 * ARRAYS_PER_STATE * per_cell * grid * grid


def check_size(grid: int, model: str, t_end: float, dt: float, n1: int, n2: int) -> None:
    """Refuse a diagram that cannot fit in half of this machine's memory, or too many steps."""
    steps = t_end / dt
    if steps > MAX_STEPS:
        raise ConfigError(f"t_end={t_end:g} would take {steps:.3g} integration steps of "
                          f"dt={dt:g}; at most {MAX_STEPS} (t_end <= {MAX_STEPS * dt:g})")
    need = memory_estimate(grid, model, n1, n2)
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if need > have // 2:
        raise ConfigError(f"grid={grid} ({model}) would need about {need / 2**30:.1f} GiB; "
                          f"this machine has {have / 2**30:.1f} GiB. Use a smaller grid")


def _reduced(values: Values, t_end: float, dt: float) -> np.ndarray:
    sigma2, eta, alpha_p, beta = (values[k] for k in ("sigma2", "eta", "alpha_p", "beta"))
    shape = np.broadcast(*(np.asarray(values[k]) for k in ("sigma2", "eta", "p0", "alpha_p"))).shape
    p = np.broadcast_to(np.asarray(values["p0"], float), shape).copy()
    s = (p**2 / alpha_p if values.get("s0") is None
         else np.broadcast_to(np.asarray(values["s0"], float), shape).copy())
    tau = np.ones(shape)

    def f(state: State) -> State:
        return mode_rhs(*state, sigma2=sigma2, eta=eta, alpha_p=alpha_p, beta=beta)

    p, _, _ = _rk4(f, (p, s, tau), dt, round(t_end / dt))
    result: np.ndarray = p
    return result


def _matrix(values: Values, t_end: float, dt: float, n1: int, n2: int, seed: int
            ) -> np.ndarray:
    """Symmetrised SimSiam/EMA matrix flow for every cell; largest final ``Wp`` eigenvalue."""
    sigma2, eta, alpha_p = (np.asarray(values[k], float)[..., None, None]
                            for k in ("sigma2", "eta", "alpha_p"))
    beta = None if values["beta"] is None else np.asarray(values["beta"], float)[..., None, None]
    shape = np.broadcast(*(np.asarray(values[k]) for k in ("sigma2", "eta", "p0", "alpha_p"))).shape
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((n1, n2)))[0].T  # (n2, n1) orthonormal rows
    R = rng.standard_normal((n2, n2))
    p0 = np.broadcast_to(np.asarray(values["p0"], float), shape)[..., None, None]
    s0 = p0**2 / alpha_p if values.get("s0") is None else np.asarray(values["s0"])
    # Unaligned start: the predictor is p0 I plus a 5% symmetric perturbation.
    Wp = p0 * (np.eye(n2) + 0.05 * (R + R.T) / np.sqrt(2 * n2))
    W = np.sqrt(s0) * np.broadcast_to(Q, (*shape, n2, n1))
    a = 1.0 + sigma2

    def f(state: State) -> State:
        Wp_, W_, Wa_ = state
        target = W_ if beta is None else Wa_
        resid = -a * Wp_ @ W_ + target  # X = I, X' = sigma2 I
        dWp = alpha_p * resid @ np.swapaxes(W_, -1, -2)
        dWp = 0.5 * (dWp + np.swapaxes(dWp, -1, -2)) - eta * Wp_
        dW = np.swapaxes(Wp_, -1, -2) @ resid - eta * W_
        dWa = np.zeros_like(W_) if beta is None else beta * (W_ - Wa_)
        return dWp, dW, dWa

    Wp, _, _ = _rk4(f, (Wp, W, W.copy()), dt, round(t_end / dt))
    return np.linalg.eigvalsh(0.5 * (Wp + np.swapaxes(Wp, -1, -2)))[..., -1]


def phase_diagram(
    x_name: str = "eta",
    y_name: str = "sigma2",
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    grid: int = 200,
    *,
    model: str = "reduced",
    fixed: dict[str, float | None] | None = None,
    t_end: float = 200.0,
    dt: float = 0.1,
    collapse_tol: float = 0.05,
    n1: int = 6,
    n2: int = 3,
    seed: int = 0,
) -> PhaseDiagram:
    """Simulated collapse over a ``grid x grid`` mesh of two parameters of :data:`AXES`.

    Fixed parameters default to ``eta=0.1, sigma2=0.5, alpha_p=1``, SimSiam
    (``beta=None``) and ``p0 = 1/(1+sigma2)`` (the ``eta = 0`` fixed point, above ``p*_-``
    whenever it exists), on the parabola ``s0 = p0^2/alpha_p`` unless ``s0`` is given. A
    cell counts as collapsed when its final ``p`` is below ``collapse_tol`` (every
    ``p*_+ >= 1/(2(1+sigma2))`` exceeds 0.05 for ``sigma2 < 9``). With ``alpha_p`` or
    ``beta`` on an axis the default start is :data:`OFF_PARABOLA_START` and no analytic
    prediction applies. Measured (2 shared CPU cores): 200x200 reduced grid in 2.0 s (3.5 s
    with EMA); 100% of cells two or more cells away from the boundary agree for
    ``(eta, sigma2)`` and ``(eta, p0)``; the 12x12 matrix grid (n1=6, n2=3) in 0.5 s.
    """
    check_choice("x", x_name, AXES)
    check_choice("y", y_name, AXES)
    check_choice("model", model, MODELS)
    if x_name == y_name:
        raise ConfigError(f"x and y must differ, both are {x_name!r}")
    check_positive("grid", grid)
    check_positive("t_end", t_end)
    check_positive("dt", dt)
    check_size(grid, model, t_end, dt, n1, n2)
    x = np.linspace(*(x_range or DEFAULT_RANGES[x_name]), grid)
    y = np.linspace(*(y_range or DEFAULT_RANGES[y_name]), grid)
    for name, axis in ((x_name, x), (y_name, y)):
        if axis.min() < 0:
            raise ConfigError(f"{name} range must be >= 0, got {axis.min():g}")
    base: dict[str, float | None] = {**DEFAULT_FIXED, "beta": None, "p0": None, "s0": None}
    if {x_name, y_name} & {"alpha_p", "beta"}:
        base.update(OFF_PARABOLA_START)
    base.update(fixed or {})
    values = _grids(x_name, y_name, x, y, base)
    if values["p0"] is None:
        values["p0"] = 1.0 / (1.0 + np.asarray(values["sigma2"]))
    if model == "reduced":
        final = _reduced(values, t_end, dt)
    else:
        final = _matrix(values, t_end, dt, n1, n2, seed)
    pred = predicted_collapse(values)
    final = np.broadcast_to(final, (grid, grid))
    return PhaseDiagram(
        x_name, y_name, x, y, final, final < collapse_tol,
        None if pred is None else np.broadcast_to(pred, (grid, grid)),
        analytic_boundary(x_name, y_name, x, y, base), base,
    )
