"""Predictors built from the eigendecomposition of ``F_hat``: DirectPred, DirectCopy, closed-form.

docs/theory.md#spectral-predictors, with ``s, U`` the eigenpairs of ``F_hat`` and
``s_max`` its largest eigenvalue:

* directpred:  ``Wp = U diag(p) U^T``, ``p_j = sqrt(s_j / s_max) + eps`` clamped to
  ``>= 1e-4``; with ``subtract=c`` facebookresearch/luckmatters' ``dyn_eps_inside``:
  ``p_j = sqrt(clamp(s_j / s_max - c, 1e-4))``;
* directcopy:  ``Wp = F_hat / s_max + eps I`` (fmi-basel/implicit-var-reg, the default),
  or ``F_hat + eps I`` with ``normalize=False`` (luckmatters' directcopy branch);
* closed-form: ``Wp = U diag((clamp(s, 0) / s_max + eps)^alpha) U^T`` (halvagal2023;
  DirectPred is ``alpha = 0.5, eps = 0``).

``update="after"`` (luckmatters' order, DirectPred's default): ``Wp`` is rebuilt after
the step, so step ``t`` uses ``F_hat`` up to step ``t - 1`` and step 0 the random initial
matrix; the rebuild may then run on a worker thread (``background``). ``update="before"``
rebuilds it from ``F_hat`` including the current batch, before it is used.
``update="each-view"`` (fmi-basel/implicit-var-reg, the default of closed-form and
directcopy): each view is folded into ``F_hat`` on its own and predicted with the matrix
built right after it (view 1 after view 1's update, view 2 after both; no lag), through
:meth:`SpectralPredictor.fold_view`.
With ``freq = 1`` the matrix is not trained. With ``freq > 1`` it is an ordinary
trainable linear layer between rebuilds (the DirectPred paper's "freq" option).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from nocollapse.errors import ConfigError, check_choice, check_in_range, check_nonnegative
from nocollapse.predictors.background import PendingMatrix
from nocollapse.predictors.correlation import CorrelationEstimate
from nocollapse.predictors.options import Option

SPECTRAL = ("directpred", "directcopy", "closed-form")
# Per-kind default eps (docs/theory.md#spectral-predictors): DirectPred authors' command
# 0.01 (their best table entry, and our directpred preset, 0.1); DirectCopy 0.25;
# closed-form 0 (halvagal2023).
DEFAULT_EPS = {"directpred": 0.01, "directcopy": 0.25, "closed-form": 0.0}
# How F_hat is fed: "joint" folds both views as one batch, the first initialising it
# (luckmatters); "per-view" starts at zeros and folds each view (two updates a step,
# implicit-var-reg). The default follows each predictor's original code.
CORRELATION_MODES = ("joint", "per-view")
DEFAULT_CORRELATION = {"directpred": "joint", "directcopy": "per-view",
                       "closed-form": "per-view"}
UPDATES = ("after", "before", "each-view")
# DirectPred follows luckmatters (rebuilt after the step); directcopy and closed-form follow
# implicit-var-reg, whose forward folds each view in and predicts it with the fresh matrix.
DEFAULT_UPDATE = {"directpred": "after", "directcopy": "each-view", "closed-form": "each-view"}
# eigh: float64 eigendecomposition (exact); eigh32 (default): float32, 1.7-2.8x faster on
# CPU, its error on Wp bounded in tests/test_predictors.py (docs/benchmarks.md, section 2).
SOLVERS = ("eigh", "eigh32")
# Where the eigendecomposition of a GPU run runs: "device" (beside the step, on the GPU)
# or "cpu" (the worker thread copies F_hat to the host and the matrix back, leaving the
# GPU's stream to the step); "auto" is "device" (docs/benchmarks.md section 10).
SOLVE_ON = ("auto", "device", "cpu")


def _eigh(F: torch.Tensor, solver: str) -> tuple[torch.Tensor, torch.Tensor]:
    if solver == "eigh32":
        try:
            s, U = torch.linalg.eigh(F.float())
            return s.double(), U.double()
        except torch.linalg.LinAlgError:  # no float32 convergence: the exact path
            pass
    try:
        return torch.linalg.eigh(F.double())
    except torch.linalg.LinAlgError as error:
        nan = _nan_if_diverged(F, error)
        return nan[0], nan


def _largest_eigenvalue(F: torch.Tensor, solver: str) -> torch.Tensor:
    dtype = torch.float64 if solver == "eigh" else torch.float32
    try:
        return torch.linalg.eigvalsh(F.to(dtype))[-1].double()
    except torch.linalg.LinAlgError as error:
        return _nan_if_diverged(F, error)[0, 0]


def _nan_if_diverged(F: torch.Tensor, error: Exception) -> torch.Tensor:
    """The solver failed with ``error``: raise it again for a finite ``F``; for a diverged run's
    ``F_hat`` (NaN/inf) a NaN ``(d, d)`` float64 matrix, so the loss stays NaN and the
    training loop stops with its own message instead of the solver's traceback."""
    if bool(torch.isfinite(F).all()):
        raise error
    return torch.full_like(F, math.nan, dtype=torch.float64)


def spectral_matrix(F_hat: torch.Tensor, kind: str, eps: float, alpha: float = 0.5,
                    subtract: float | None = None, normalize: bool = True,
                    solver: str = "eigh") -> torch.Tensor:
    """The predictor matrix of ``kind`` from a correlation ``F_hat`` (``(d, d)``)."""
    F = F_hat.double()
    if kind == "directcopy":
        eye = torch.eye(F.shape[0], dtype=torch.float64, device=F.device)
        if not normalize:
            return (F + eps * eye).to(F_hat.dtype)
        top = _largest_eigenvalue(F, solver).clamp_min(1e-12)
        return (F / top + eps * eye).to(F_hat.dtype)
    s, U = _eigh(F, solver)
    s = s.clamp_min(0.0)
    top = s.max().clamp_min(1e-12)
    if kind == "directpred":
        if subtract is not None:
            p = (s / top - subtract).clamp_min(1e-4).sqrt()
        else:
            p = ((s / top).sqrt() + eps).clamp_min(1e-4)
    else:  # closed-form
        p = (s / top + eps).pow(alpha)
    return ((U * p) @ U.T).to(F_hat.dtype)


def default_update(kind: str, correlation: str) -> str:
    """``update`` when none is given: the kind's original, ``after`` for a joint correlation
    (luckmatters' accumulator, whose matrix is rebuilt after the step)."""
    return DEFAULT_UPDATE[kind] if correlation == "per-view" else "after"


def check_combination(kind: str, options: Mapping[str, object]) -> None:
    """Refuse options that do not apply to ``kind`` or to each other (before anything runs)."""
    if options.get("subtract") is not None and kind != "directpred":
        raise ConfigError(f"subtract applies to directpred only (got predictor {kind!r})")
    if options.get("normalize") is False and kind != "directcopy":
        raise ConfigError(f"normalize=false applies to directcopy only (got {kind!r})")
    correlation = str(options.get("correlation") or DEFAULT_CORRELATION[kind])
    update = str(options.get("update") or default_update(kind, correlation))
    if options.get("background") and update != "after":
        raise ConfigError(f"background=true needs update=after: with update={update} the "
                          "matrix is used as soon as it is built")
    if update == "each-view":
        if correlation != "per-view":
            raise ConfigError("update=each-view folds each view into F_hat on its own: it needs "
                              f"correlation=per-view (got {correlation})")
        freq = options.get("freq")
        if isinstance(freq, int | float) and freq != 1:
            raise ConfigError(f"update=each-view rebuilds Wp for every view: it needs freq=1 "
                              f"(got {freq:g})")


class SpectralPredictor(nn.Module):
    """``p = z Wp^T`` with ``Wp`` rebuilt from ``F_hat`` every ``freq`` training steps.

    ``background``: rebuild on a worker thread (``update="after"`` only); ``None``: on
    whenever ``update="after"`` (on CPU it measured faster than the same rebuild on the
    critical path, docs/benchmarks.md section 2; beside a GPU step the CPU is idle).
    """

    steps: torch.Tensor

    def __init__(self, dim: int, kind: str = "directpred", rho: float = 0.3,
                 eps: float | None = None, alpha: float = 0.5, freq: int = 1,
                 subtract: float | None = None, normalize: bool = True,
                 correlation: str | None = None, update: str | None = None,
                 solver: str = "eigh32", background: bool | None = None,
                 solve_on: str = "auto"):
        super().__init__()
        check_choice("spectral predictor", kind, SPECTRAL)
        eps = DEFAULT_EPS[kind] if eps is None else eps
        correlation = DEFAULT_CORRELATION[kind] if correlation is None else correlation
        update = default_update(kind, correlation) if update is None else update
        if int(freq) != freq or freq < 1:
            raise ConfigError(f"freq={freq}; rebuild the predictor every freq >= 1 (an integer) "
                              "training steps")
        check_nonnegative("eps", eps)
        check_nonnegative("alpha", alpha)
        check_choice("correlation", correlation, CORRELATION_MODES)
        check_choice("update", update, UPDATES)
        check_choice("solver", solver, SOLVERS)
        check_choice("solve_on", solve_on, SOLVE_ON)
        check_combination(kind, {"subtract": subtract, "normalize": normalize,
                                 "background": background, "update": update,
                                 "correlation": correlation, "freq": freq})
        self.kind, self.eps, self.alpha, self.freq = kind, eps, alpha, int(freq)
        self.subtract, self.normalize, self.solver = subtract, bool(normalize), solver
        self.solve_on = solve_on
        self.per_view, self.update, self.background = correlation == "per-view", update, background
        self.correlation = CorrelationEstimate(
            dim, rho, init="zeros" if self.per_view else "first-batch")
        # Random start as nn.Linear (luckmatters' predictor); update=after uses it at step 0.
        self.weight = nn.Parameter(torch.empty(dim, dim), requires_grad=self.freq > 1)
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self._steps = 0  # host copy of ``steps``: the freq test reads no device value
        self._pending = PendingMatrix()
        self.register_load_state_dict_post_hook(_sync_host_steps)
        self.register_state_dict_pre_hook(_install_before_saving)

    @torch.no_grad()
    def update_correlation(self, *views: torch.Tensor) -> None:
        """Training step only: fold the views (each ``(B, dim)``) into ``F_hat``; rebuild
        ``Wp`` when due (now with ``update="before"``, for the next step with ``"after"``).

        Never called by ``forward``, so evaluation passes leave ``F_hat`` untouched. With
        ``update="each-view"`` each view is folded in by :meth:`fold_view` in turn.
        """
        if self.update == "each-view":
            for index, z in enumerate(views):
                self.fold_view(z, last=index == len(views) - 1)
            return
        for z in views if self.per_view else [torch.cat(views)]:
            self.correlation.update(z)
        self.steps += 1
        self._steps += 1
        if (self._steps - 1) % self.freq:
            return
        snapshot = self.correlation.F_hat.clone()
        options = (self.kind, self.eps, self.alpha, self.subtract, self.normalize, self.solver)

        background = self.background if self.background is not None else True
        # solve_on "auto" is "device": on an H100 neither place was faster beyond the
        # step's noise (docs/benchmarks.md section 10)
        on_host = snapshot.device.type != "cpu" and self.solve_on == "cpu"

        def build() -> torch.Tensor:
            if on_host:
                return spectral_matrix(snapshot.cpu(), *options).to(self.weight)
            return spectral_matrix(snapshot, *options).to(self.weight.dtype)

        self._pending.put(build, background and self.update == "after")
        if self.update == "before":
            self.install()

    @torch.no_grad()
    def fold_view(self, z: torch.Tensor, last: bool) -> torch.Tensor:
        """``update="each-view"``, training step only: fold one view ``z`` (``(B, dim)``)
        into ``F_hat`` and return the matrix built from it, which that view's prediction
        uses (implicit-var-reg's forward). ``last``: the step's final view, whose matrix
        becomes ``Wp`` (evaluation passes and the diagnostics read it).
        """
        self.correlation.update(z)
        options = (self.kind, self.eps, self.alpha, self.subtract, self.normalize, self.solver)
        matrix = spectral_matrix(self.correlation.F_hat, *options).to(self.weight.dtype)
        if last:
            self.steps += 1
            self._steps += 1
            self.weight.copy_(matrix)
        return matrix

    @torch.no_grad()
    def install(self) -> None:
        """Copy a rebuilt matrix that is waiting into ``Wp`` (waiting for its thread)."""
        matrix = self._pending.take()
        if matrix is not None:
            self.weight.copy_(matrix)

    def matrix(self) -> torch.Tensor:
        """``Wp`` of shape ``(dim, dim)`` (``p = Wp z``)."""
        self.install()
        return self.weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.install()
        weight = self.weight if self.freq > 1 else self.weight.detach()
        return z @ weight.T

    def __getstate__(self) -> dict[str, Any]:  # copy/pickle: the waiting matrix, installed
        self.install()
        return self.__dict__


def _sync_host_steps(module: SpectralPredictor, _keys: object) -> None:
    module._steps = int(module.steps)


def _install_before_saving(module: SpectralPredictor, *_args: object) -> None:
    module.install()


def _check_rho(name: str, value: float) -> None:
    check_in_range(name, value, 0.0, 0.999999)


def _check_freq(name: str, value: float) -> None:
    if int(value) != value or value < 1:
        raise ConfigError(f"{name}={value}; rebuild the predictor every freq >= 1 (an integer) "
                          "training steps")


# The options every spectral predictor accepts (build_predictor and the learner's
# predictor_options are checked against it): add an option here and in SpectralPredictor.
SPECTRAL_OPTIONS: dict[str, Option] = {
    "rho": Option(float, "weight of the old F_hat in its EMA, in [0, 1)", 0.3, _check_rho),
    "eps": Option(float, "added to the eigenvalues (default per kind: directpred 0.01, "
                  "directcopy 0.25, closed-form 0)", None, check_nonnegative),
    "alpha": Option(float, "closed-form exponent (0.5 = DirectPred)", 0.5, check_nonnegative),
    "freq": Option(float, "rebuild Wp every freq training steps (trainable between rebuilds)",
                   1, _check_freq),
    "subtract": Option(float, "directpred: p_j = sqrt(max(s_j / s_max - subtract, 1e-4)) "
                       "(luckmatters' dyn_eps_inside) instead of sqrt(s_j / s_max) + eps", None),
    "normalize": Option(bool, "directcopy: F_hat / s_max + eps I (true, implicit-var-reg) or "
                        "F_hat + eps I (false, luckmatters)", True),
    "correlation": Option(str, "joint: both views one batch, the first initialises F_hat "
                          "(luckmatters; directpred, directcopy) | per-view: from zeros, one EMA "
                          "update per view (implicit-var-reg; closed-form)", None,
                          choices=CORRELATION_MODES),
    "update": Option(str, "after: Wp rebuilt after the step, step t uses F_hat up to t-1 "
                     "(luckmatters; directpred) | before: from F_hat including the current batch "
                     "| each-view: each view predicted with the matrix built right after its "
                     "own update, no lag (implicit-var-reg; directcopy, closed-form)", None,
                     choices=UPDATES),
    "solver": Option(str, "eigh32: float32 eigendecomposition, faster, error bounded by a "
                     "test | eigh: float64, exact", "eigh32", choices=SOLVERS),
    "background": Option(bool, "rebuild Wp on a worker thread; default: on with update=after",
                         None),
    "solve_on": Option(str, "a GPU run's eigendecomposition: device | cpu (the worker thread "
                       "copies F_hat to the host) | auto (= device)", "auto",
                       choices=SOLVE_ON),
}
