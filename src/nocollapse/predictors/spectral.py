"""What every spectral predictor shares: ``F_hat``, update order, ``freq``, the worker thread.

A spectral *kind* is a matrix function ``matrix(F, **its options) -> Wp`` of the float64
correlation ``F`` (``(d, d)``) and its own option schema (``directpred.py``,
``directcopy.py``, ``closed_form.py``); :func:`spectral_entry` makes it a registry entry
whose schema is :data:`SPECTRAL_OPTIONS` (this module's options) plus the kind's own, so
an option the kind lacks is refused by name. docs/extending.md#a-spectral-predictor-kind.

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

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from nocollapse.errors import ConfigError, check_choice
from nocollapse.predictors.background import PendingMatrix
from nocollapse.predictors.correlation import CorrelationEstimate, check_rho
from nocollapse.predictors.entry import PredictorEntry
from nocollapse.predictors.options import Option, OptionSchema, OptionValue

# How F_hat is fed: "joint" folds both views as one batch, the first initialising it
# (luckmatters); "per-view" starts at zeros and folds each view (two updates a step,
# implicit-var-reg). The default follows each kind's original code.
CORRELATION_MODES = ("joint", "per-view")
UPDATES = ("after", "before", "each-view")
# Where the eigendecomposition of a GPU run runs: "device" (beside the step, on the GPU)
# or "cpu" (the worker thread copies F_hat to the host and the matrix back, leaving the
# GPU's stream to the step); "auto" is "device" (docs/benchmarks.md section 10).
SOLVE_ON = ("auto", "device", "cpu")

# matrix(F, **the kind's options) -> Wp, both float64 (d, d); a kind whose solver keeps
# state between calls (``warm_start``) also takes ``warm=`` (a dict it reads and updates)
SpectralMatrix = Callable[..., torch.Tensor]
WarmStart = Callable[[Mapping[str, OptionValue]], bool]


def _never(_options: Mapping[str, OptionValue]) -> bool:
    return False


@dataclass(frozen=True)
class SpectralKind:
    """One spectral kind: its matrix function and its original way of feeding ``F_hat``.

    ``correlation``: its default correlation mode; ``update``: its update order when
    ``F_hat`` is fed per view (a joint ``F_hat`` is rebuilt after the step, as
    luckmatters' accumulator); ``warm_start(options)``: whether the matrix function keeps
    a vector between calls with these options (kept in the state dict, so a resumed run
    builds the same matrices). ``check``: refuses the kind's own options that do not go
    together. Called as the registry entry's builder.
    """

    matrix: SpectralMatrix
    correlation: str
    update: str
    warm_start: WarmStart = _never
    check: Callable[[Mapping[str, OptionValue]], None] | None = None

    def default_update(self, correlation: str) -> str:
        """``update`` when none is given, for the ``correlation`` mode in use."""
        return self.update if correlation == "per-view" else "after"

    def check_together(self, options: Mapping[str, OptionValue]) -> None:
        """Refuse shared options that do not apply to each other (before anything runs)."""
        if self.check is not None:
            self.check(options)
        correlation = str(options.get("correlation") or self.correlation)
        update = str(options.get("update") or self.default_update(correlation))
        if options.get("background") and update != "after":
            raise ConfigError(f"background=true needs update=after: with update={update} the "
                              "matrix is used as soon as it is built")
        if update == "each-view":
            if correlation != "per-view":
                raise ConfigError("update=each-view folds each view into F_hat on its own: it "
                                  f"needs correlation=per-view (got {correlation})")
            freq = options.get("freq")
            if isinstance(freq, int | float) and freq != 1:
                raise ConfigError(f"update=each-view rebuilds Wp for every view: it needs "
                                  f"freq=1 (got {freq:g})")

    def __call__(self, dim: int, hidden_dim: int, *, rho: float, freq: float,
                 correlation: str | None, update: str | None, background: bool | None,
                 solve_on: str, **options: OptionValue) -> SpectralPredictor:
        correlation = correlation or self.correlation
        return SpectralPredictor(dim, self.matrix, options, rho=rho, freq=int(freq),
                                 per_view=correlation == "per-view",
                                 update=update or self.default_update(correlation),
                                 background=background, solve_on=solve_on,
                                 warm_start=self.warm_start(options))


def spectral_entry(matrix: SpectralMatrix, help: str, options: OptionSchema, *,
                   correlation: str, update: str, warm_start: WarmStart = _never,
                   check: Callable[[Mapping[str, OptionValue]], None] | None = None
                   ) -> PredictorEntry:
    """The registry entry of a spectral kind: ``matrix(F, **options)`` with its own
    ``options`` schema, fed ``F_hat`` as ``correlation`` and rebuilt as ``update``
    (their defaults; :data:`SPECTRAL_OPTIONS` may change them per run); ``warm_start``
    and ``check`` as :class:`SpectralKind`'s."""
    check_choice("correlation", correlation, CORRELATION_MODES)
    check_choice("update", update, UPDATES)
    shared = sorted(set(options) & set(SPECTRAL_OPTIONS))
    if shared:
        raise ConfigError(f"a spectral kind's options may not redefine the shared ones: "
                          f"{', '.join(shared)}")
    kind = SpectralKind(matrix, correlation, update, warm_start, check)
    return PredictorEntry(kind, help, {**SPECTRAL_OPTIONS, **options}, spectral=True,
                          check_together=kind.check_together)


class SpectralPredictor(nn.Module):
    """``p = z Wp^T`` with ``Wp = matrix(F_hat, **options)`` rebuilt every ``freq`` training
    steps, from ``F_hat`` fed per view (``per_view``) or jointly.

    Built by :class:`SpectralKind` from checked options (``build_predictor``).
    ``background``: rebuild on a worker thread (``update="after"`` only); ``None``: on
    whenever ``update="after"`` (on CPU it measured faster than the same rebuild on the
    critical path, docs/benchmarks.md section 2; beside a GPU step the CPU is idle).
    """

    steps: torch.Tensor
    warm_vector: torch.Tensor  # with a warm-starting solver only

    def __init__(self, dim: int, matrix: SpectralMatrix, options: Mapping[str, OptionValue],
                 *, rho: float, freq: int, per_view: bool, update: str,
                 background: bool | None, solve_on: str, warm_start: bool = False):
        super().__init__()
        self._matrix, self.options = matrix, dict(options)
        self.freq, self.per_view, self.update = freq, per_view, update
        self.background, self.solve_on = background, solve_on
        self.correlation = CorrelationEstimate(
            dim, rho, init="zeros" if self.per_view else "first-batch")
        # Random start as nn.Linear (luckmatters' predictor); update=after uses it at step 0.
        self.weight = nn.Parameter(torch.empty(dim, dim), requires_grad=self.freq > 1)
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.warm_start = warm_start
        if warm_start:  # the solver's vector between calls; zeros: none yet (a cold start)
            self.register_buffer("warm_vector", torch.zeros(dim))
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
        background = self.background if self.background is not None else True
        # solve_on "auto" is "device": on an H100 neither place was faster beyond the
        # step's noise (docs/benchmarks.md section 10)
        on_host = snapshot.device.type != "cpu" and self.solve_on == "cpu"

        def build() -> torch.Tensor:
            if on_host:
                return self.matrix_of(snapshot.cpu()).to(self.weight)
            return self.matrix_of(snapshot).to(self.weight.dtype)

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
        matrix = self.matrix_of(self.correlation.F_hat).to(self.weight.dtype)
        if last:
            self.steps += 1
            self._steps += 1
            self.weight.copy_(matrix)
        return matrix

    def matrix_of(self, F_hat: torch.Tensor) -> torch.Tensor:
        """The kind's matrix of a correlation ``F_hat`` (``(dim, dim)``), in its dtype."""
        if not self.warm_start:
            return self._matrix(F_hat.double(), **self.options).to(F_hat.dtype)
        vector = self.warm_vector
        warm: dict[str, torch.Tensor] = {"vector": vector} if bool(vector.any()) else {}
        matrix = self._matrix(F_hat.double(), warm=warm, **self.options).to(F_hat.dtype)
        if "vector" in warm:
            vector.copy_(warm["vector"])
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

    def __getstate__(self) -> dict[str, object]:  # copy/pickle: the waiting matrix, installed
        self.install()
        return self.__dict__


def _sync_host_steps(module: SpectralPredictor, _keys: object) -> None:
    module._steps = int(module.steps)


def _install_before_saving(module: SpectralPredictor, *_args: object) -> None:
    module.install()


def _check_freq(name: str, value: float) -> None:
    if int(value) != value or value < 1:
        raise ConfigError(f"{name}={value}; rebuild the predictor every freq >= 1 (an integer) "
                          "training steps")


# The options every spectral kind accepts besides its own (spectral_entry joins them).
SPECTRAL_OPTIONS: dict[str, Option] = {
    "rho": Option(float, "weight of the old F_hat in its EMA, in [0, 1)", 0.3, check_rho),
    "freq": Option(float, "rebuild Wp every freq training steps (trainable between rebuilds)",
                   1, _check_freq),
    "correlation": Option(str, "joint: both views one batch, the first initialises F_hat "
                          "(luckmatters; directpred, directcopy) | per-view: from zeros, one EMA "
                          "update per view (implicit-var-reg; closed-form)", None,
                          choices=CORRELATION_MODES),
    "update": Option(str, "after: Wp rebuilt after the step, step t uses F_hat up to t-1 "
                     "(luckmatters; directpred) | before: from F_hat including the current batch "
                     "| each-view: each view predicted with the matrix built right after its "
                     "own update, no lag (implicit-var-reg; directcopy, closed-form)", None,
                     choices=UPDATES),
    "background": Option(bool, "rebuild Wp on a worker thread; default: on with update=after",
                         None),
    "solve_on": Option(str, "a GPU run's eigendecomposition: device | cpu (the worker thread "
                       "copies F_hat to the host) | auto (= device)", "auto",
                       choices=SOLVE_ON),
}
