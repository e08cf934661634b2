"""The common result of a theory-vs-simulation run, shared by every theory model.

``nocollapse simulate`` and the reproductions consume this one type, whatever
the model (tian2021, halvagal2023, bao2023).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nocollapse.errors import ConfigError


@dataclass
class Comparison:
    """Eigenvalue trajectories of a full-matrix simulation and of its reduced ODE.

    Attributes:
        model: short name of the paper's model, e.g. ``"tian2021"``.
        quantity: what the eigenvalues are, e.g. ``"p_j (eigenvalues of Wp)"``.
        times: shape ``(T,)``, the common time axis (ODE time units).
        simulated: shape ``(T, m)``, sorted eigenvalues of the matrix simulation.
        theory: shape ``(T, m)``, the reduced ODE started from the same state,
            modes in the same order as ``simulated``.
        extras: further per-time series of shape ``(T,)`` or ``(T, k)`` (norms,
            commutator, uniformity, ...), keyed by a short name.
        params: the parameters of the run (model constants, seed, steps).
        collapse_threshold: an eigenvalue below this counts as collapsed.
    """

    model: str
    quantity: str
    times: np.ndarray
    simulated: np.ndarray
    theory: np.ndarray
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    collapse_threshold: float = 1e-3

    def __post_init__(self) -> None:
        self.times = np.asarray(self.times, dtype=float)
        self.simulated = np.atleast_2d(np.asarray(self.simulated, dtype=float))
        self.theory = np.atleast_2d(np.asarray(self.theory, dtype=float))
        if self.simulated.shape != self.theory.shape:
            raise ValueError(
                f"simulated {self.simulated.shape} and theory {self.theory.shape} differ"
            )
        if self.simulated.shape[0] != self.times.shape[0]:
            raise ValueError("times and trajectories have different lengths")

    def final_relative_error(self) -> np.ndarray:
        """Per-mode ``|sim - theory| / max(|theory|, threshold)`` at the last time."""
        sim, th = self.simulated[-1], self.theory[-1]
        result: np.ndarray = np.abs(sim - th) / np.maximum(np.abs(th), self.collapse_threshold)
        return result

    def collapsed_modes(self) -> np.ndarray:
        """Boolean mask of modes whose simulated final eigenvalue is below threshold."""
        result: np.ndarray = np.abs(self.simulated[-1]) < self.collapse_threshold
        return result


@dataclass
class SimulationParams:
    """Options of ``nocollapse simulate``; ``None`` means "the model's default".

    Each model's ``run_comparison(params)`` reads the fields it supports and
    raises :class:`nocollapse.errors.ConfigError` for a combination it does not
    support (naming the ones it does).
    """

    model: str = "tian2021"
    loss: str | None = None  # a training loss name: l2, cosine, isoloss-l2, isoloss-cosine
    augment: str | None = None  # halvagal2023: "target" (authors' code) | "both" (paper)
    eta: float | None = None  # weight decay
    sigma2: float | None = None  # augmentation variance
    alpha_p: float | None = None  # predictor learning-rate ratio
    beta: float | None = None  # EMA rate (None or 0 with ema=False: SimSiam)
    steps: int | None = None
    lr: float | None = None  # step size of the discrete simulation (ODE time per step)
    n1: int | None = None  # input dimension
    n2: int | None = None  # output dimension
    seed: int = 0


def refuse_options(params: SimulationParams, names: tuple[str, ...], model: str,
                   reason: str) -> None:
    """Raise a ConfigError for any of ``names`` set (non-zero) on ``params``.

    ``reason`` says why the ``model`` has no such option, e.g. "no weight decay".
    """
    for name in names:
        value = getattr(params, name)
        if value not in (None, 0, 0.0):
            raise ConfigError(
                f"--{name.replace('_', '-')}={value!r} is not part of the {model} model "
                f"({reason}); leave it unset or use --model tian2021"
            )
