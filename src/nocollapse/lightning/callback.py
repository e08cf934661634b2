"""``CollapseCallback``: nocollapse's collapse monitor inside a Lightning ``Trainer``.

The embeddings come from what ``training_step`` returns (``{"loss": loss, "z1": z0,
"z2": z1}``), from ``views=fn(outputs, batch, module)``, or, for a module whose
``training_step`` returns only the loss (lightly's examples), from forward hooks on its
projection head (``embeddings="projection_head"``; ``"auto"`` uses it when the module
has one and the step returned no views). After each optimiser step the callback hands
them to :class:`nocollapse.monitor.Monitor`, logs the diagnostics through
``LightningModule.log_dict`` under ``nocollapse/`` (so they reach
``trainer.callback_metrics``, ``EarlyStopping`` and ``ModelCheckpoint``, on the rows and
steps of the module's own metrics), writes its run directory, and with
``stop_on_collapse`` stops the Trainer at a confirmed collapse (decided on global rank 0).
A diagnostic never ends a fit: an input it cannot read is warned about once and the
callback turns itself off.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import lightning.pytorch as pl
import torch

from nocollapse.errors import ConfigError
from nocollapse.lightning.capture import Capture
from nocollapse.monitor import (
    Monitor,
    MonitorConfig,
    MonitorInputError,
    infer_stop_gradient,
    monitor_config,
)
from nocollapse.monitor.observe import StopGradient
from nocollapse.runio import RUN_FILES

ViewsFunction = Callable[[object, object, "pl.LightningModule"], tuple[torch.Tensor, torch.Tensor]]
PREDICTOR_ATTRIBUTES = ("prediction_head", "predictor")  # lightly's name, then the common one
PROJECTION_ATTRIBUTE = "projection_head"  # lightly's name: what embeddings="auto" hooks
LOG_PREFIX = "nocollapse/"
DEFAULT_FOLDER = "nocollapse"


class CollapseCallback(pl.Callback):
    """Collapse diagnostics, warnings and an optional stop, for any two-view SSL module.

    ``run_dir``: where the run files go (default ``<trainer.log_dir>/nocollapse``, which
    Lightning's loggers version; ``nocollapse_1``, ``_2``, ... when it already holds a
    run); ``embeddings``: ``"auto"`` (``z1``/``z2`` returned by ``training_step``, else
    forward hooks on the module's ``projection_head`` when it has one), ``"returned"``,
    or the name of the submodule whose outputs are the embeddings (hooked: no change to
    the module); ``views``: a function ``(outputs, batch, module) -> (z1, z2)``;
    ``predictor``: the predictor module, the name of the module's attribute that holds
    it, or ``"auto"`` (``prediction_head``, then ``predictor``; an ``nn.Identity``
    there means no predictor; a linear one gives the spectra of ``Wp``).
    ``stop_gradient``: ``True``/``False`` when you know it, or ``"auto"``: whether the
    targets carry gradient, read from the output's ``targets``, else from the inputs of
    the module's ``criterion`` (hooked with ``embeddings``), else from the returned
    views themselves, as lightly's modules detach ``z`` in ``forward``; ``None``:
    unknown. ``resume``: continue a run directory that already holds a run (a fit
    resumed from a Lightning checkpoint continues its own without it); ``name``: the
    run's name in ``nocollapse report``'s legends. ``options``:
    :class:`~nocollapse.monitor.MonitorConfig` fields (``every``, default the Trainer's
    ``log_every_n_steps``; ``patience``, ``rank_drop``, ...; ``tensorboard`` defaults to
    False: the Trainer's loggers already receive the diagnostics). A bad option raises
    :class:`~nocollapse.errors.ConfigError` here, before any fit.
    """

    def __init__(self, run_dir: str | Path | None = None, *, embeddings: str = "auto",
                 views: ViewsFunction | None = None,
                 predictor: str | torch.nn.Module | None = "auto",
                 stop_gradient: StopGradient = "auto", stop_on_collapse: bool = False,
                 resume: bool = False, name: str | None = None, **options: Any) -> None:
        super().__init__()
        options.setdefault("tensorboard", False)
        monitor_config(None, options)  # refuses an unknown or out-of-range option now
        _check_choices(embeddings, views, predictor, stop_gradient, stop_on_collapse, resume)
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.embeddings, self.views, self.predictor = embeddings, views, predictor
        self.stop_gradient, self.stop_on_collapse = stop_gradient, stop_on_collapse
        self.resume, self.name, self.options = resume, name, options
        self.monitor: Monitor | None = None
        self.disabled: str | None = None  # why the diagnostics stopped, once they did
        self.stopped_at: int | None = None
        self._capture: Capture | None = None
        self._saved_state: dict[str, Any] | None = None
        self._last_step = -1
        self._every = int(options.get("every", 0))

    @property
    def state_key(self) -> str:
        # two callbacks in one Trainer keep their own state in a checkpoint
        return self._generate_state_key(run_dir=None if self.run_dir is None
                                        else str(self.run_dir), embeddings=self.embeddings,
                                        name=self.name)

    # -- Lightning hooks ------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after Lightning restored a checkpoint (load_state_dict): a resumed fit continues
        # the run directory and the monitor's state
        if "every" not in self.options:
            # set by Lightning's logger connector (not a declared attribute)
            interval = getattr(trainer, "log_every_n_steps", None)
            self._every = interval if isinstance(interval, int) and interval > 0 \
                else MonitorConfig().every
        if not trainer.is_global_zero:
            return
        self._attach(pl_module)
        saved = self._saved_state
        if self.run_dir is None:
            self.run_dir = _default_run_dir(trainer, saved is not None or self.resume)
        self.monitor = Monitor(self.run_dir, resume=saved is not None or self.resume,
                               stop_on_collapse=False, name=self.name,
                               stop_gradient=None if self.stop_gradient == "auto"
                               else self.stop_gradient,
                               **{**self.options, "every": self._every})
        if saved is not None:
            self.monitor.load_state_dict(saved)
            self._saved_state = None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                             batch: object, batch_idx: int) -> None:
        if self._capture is not None:
            self._capture.start()

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: object, batch: object, batch_idx: int) -> None:
        step = trainer.global_step
        # one observation per optimiser step (gradient accumulation: the last micro-batch)
        if step <= self._last_step or step == 0:
            return
        due = self._every > 0 and (self._last_step < 0
                                   or step // self._every > self._last_step // self._every)
        self._last_step = step
        scalars: dict[str, float] | None = None
        collapsed = False
        if self.monitor is not None and self.disabled is None:
            try:
                scalars, collapsed = self._observe(trainer, pl_module, outputs, batch, step)
            except Exception as error:  # a diagnostic never ends the fit
                self._disable(f"step {step}", error)
        if self._capture is not None:
            self._capture.stop()
        if due and trainer.world_size > 1:  # every process logs rank 0's values
            scalars = trainer.strategy.broadcast(scalars, src=0)
        if scalars:
            pl_module.log_dict(scalars, on_step=True, on_epoch=False)
        # one decision for every process (rank 0 holds the monitor)
        if self.stop_on_collapse and trainer.strategy.broadcast(collapsed, src=0):
            self.stopped_at = step
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        monitor, epoch = self.monitor, trainer.current_epoch + 1
        if monitor is None or self.disabled is not None:
            return
        # a fit resumed from a checkpoint saved at the end of an epoch (max_steps) ends
        # that epoch again: it has its spectra line already
        if monitor.last_epoch is not None and epoch <= monitor.last_epoch:
            return
        try:
            monitor.end_epoch(epoch)
        except Exception as error:  # a diagnostic never ends the fit
            self._disable(f"the end of epoch {epoch}", error)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.monitor is not None:
            self.monitor.close(None if self.stopped_at is None
                               else f"collapse at step {self.stopped_at}", note=self.disabled)
        self._detach()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        if self.monitor is not None:
            self.monitor.close(f"interrupted ({type(exception).__name__})", note=self.disabled)
        self._detach()

    def state_dict(self) -> dict[str, object]:
        if self.monitor is None:
            return {}
        return {"monitor": self.monitor.state_dict(), "run_dir": str(self.run_dir),
                "last_step": self._last_step}

    def load_state_dict(self, state_dict: dict[str, object]) -> None:
        if not state_dict:
            return
        # applied when the fit starts; a checkpoint of version 1 held the monitor's state
        state = cast(dict[str, Any], state_dict.get("monitor", state_dict))
        self._saved_state = state
        if self.run_dir is None and isinstance(state_dict.get("run_dir"), str):
            self.run_dir = Path(cast(str, state_dict["run_dir"]))
        last = state_dict.get("last_step", state.get("last_step"))
        self._last_step = last if isinstance(last, int) and last > 0 else -1

    # -- helpers ------------------------------------------------------------------------
    def _attach(self, pl_module: pl.LightningModule) -> None:
        """Forward hooks on the named (or lightly's) projection head, when asked for."""
        name = self.embeddings
        if name == "auto":
            found = getattr(pl_module, PROJECTION_ATTRIBUTE, None)
            name = PROJECTION_ATTRIBUTE if isinstance(found, torch.nn.Module) else "returned"
        if name == "returned":
            return
        self._capture = Capture()
        self._capture.attach(pl_module, name)

    def _detach(self) -> None:
        if self._capture is not None:
            self._capture.remove()
            self._capture = None

    def _disable(self, where: str, error: Exception) -> None:
        self.disabled = (f"diagnostics turned off at {where}: {type(error).__name__}: {error}; "
                         "the fit went on without them")
        warnings.warn(f"nocollapse.CollapseCallback: {self.disabled}", stacklevel=2)

    def _observe(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: object,
                 batch: object, step: int) -> tuple[dict[str, float] | None, bool]:
        """Hand the step to the monitor: (the scalars to log when it logged, a new warning)."""
        assert self.monitor is not None
        z1, z2, returned = self._views(outputs, batch, pl_module)
        context = self.monitor.core.warning.context
        predictor, evidence = self._predictor(pl_module, outputs)
        if evidence:
            context["predictor_evidence"] = evidence
        if self.stop_gradient == "auto":
            self._infer_stop_gradient(outputs, (z1, z2) if returned else None, context)
        before = len(self.monitor.warnings)
        mapping = outputs if isinstance(outputs, Mapping) else {}
        # the monitor checks the loss it is given and names a wrong type
        loss = cast(torch.Tensor | float | None,
                    mapping.get("loss") if isinstance(outputs, Mapping) else outputs)
        record = self.monitor.observe(step, z1, z2, predictor=predictor, loss=loss,
                                      target_momentum=mapping.get("target_momentum"),
                                      weight_decay=_weight_decay(trainer))
        scalars = None if record is None else {
            LOG_PREFIX + key: float(value) for key, value in record.items()
            if key not in {"step", "epoch"} and isinstance(value, int | float)
            and not isinstance(value, bool)}
        return scalars, len(self.monitor.warnings) > before

    def _views(self, outputs: object, batch: object, pl_module: pl.LightningModule
               ) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """``(z1, z2, returned)``: from ``views``, the returned dict, or the hooks."""
        if self.views is not None:
            z1, z2 = self.views(outputs, batch, pl_module)
            return z1, z2, True
        if isinstance(outputs, Mapping) and "z1" in outputs and "z2" in outputs:
            return outputs["z1"], outputs["z2"], True
        if self._capture is not None:
            z1, z2 = self._capture.views()
            return z1, z2, False
        got = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
        raise MonitorInputError(
            f"training_step returned {got} and the module has no {PROJECTION_ATTRIBUTE}; pass "
            "CollapseCallback(embeddings='<the projection head's attribute>'), return "
            "{'loss': loss, 'z1': z1, 'z2': z2}, or pass views=fn with fn(outputs, batch, "
            "module) -> (z1, z2)")

    def _predictor(self, pl_module: pl.LightningModule, outputs: object
                   ) -> tuple[torch.nn.Module | torch.Tensor | None, str | None]:
        if isinstance(outputs, Mapping) and outputs.get("predictor") is not None:
            return outputs["predictor"], None
        if isinstance(self.predictor, torch.nn.Module) or self.predictor is None:
            return self.predictor, None
        names = PREDICTOR_ATTRIBUTES if self.predictor == "auto" else (self.predictor,)
        for name in names:
            if hasattr(pl_module, name):
                found = getattr(pl_module, name)
                if found is None or isinstance(found, torch.nn.Identity):
                    return torch.nn.Identity(), f"the module's {name} is {found!r}"
                return found, None
        if self.predictor != "auto":
            raise MonitorInputError(f"predictor={self.predictor!r}: the LightningModule "
                                    f"{type(pl_module).__name__} has no such attribute")
        return None, None

    def _infer_stop_gradient(self, outputs: object,
                             returned: tuple[torch.Tensor, torch.Tensor] | None,
                             context: dict[str, object]) -> None:
        targets = outputs.get("targets") if isinstance(outputs, Mapping) else None
        if targets is not None:
            found, where = targets, "the targets returned by training_step"
        elif self._capture is not None and self._capture.targets() is not None:
            found = self._capture.targets()
            where = "the inputs of the module's criterion"
        elif returned is not None:
            found, where = returned, "the embeddings returned by training_step"
        else:
            return  # hooked embeddings precede lightly's detach: they say nothing
        stop_gradient, evidence = infer_stop_gradient(cast(Any, found), where)
        if stop_gradient is not None:
            context["stop_gradient"] = stop_gradient
            context["stop_gradient_evidence"] = evidence.replace(
                "pass stop_gradient=True", "pass CollapseCallback(stop_gradient=True)")


def _check_choices(embeddings: object, views: object, predictor: object,
                   stop_gradient: object, stop_on_collapse: object, resume: object) -> None:
    """The callback's own arguments, refused by name when the callback is made."""
    if not isinstance(embeddings, str) or not embeddings:
        raise ConfigError(f"embeddings={embeddings!r} must be 'auto', 'returned' or the name "
                          "of the module's projection head")
    if views is not None and not callable(views):
        raise ConfigError(f"views={views!r} must be a function (outputs, batch, module) -> "
                          "(z1, z2) or None")
    if views is not None and embeddings != "auto":
        raise ConfigError(f"pass views or embeddings={embeddings!r}, not both")
    if not (predictor is None or isinstance(predictor, str | torch.nn.Module)):
        raise ConfigError(f"predictor={predictor!r} must be 'auto', an attribute name, a "
                          "module or None")
    if stop_gradient not in (True, False, None, "auto"):
        raise ConfigError(f"stop_gradient={stop_gradient!r} must be True, False, 'auto' or "
                          "None")
    for key, value in (("stop_on_collapse", stop_on_collapse), ("resume", resume)):
        if not isinstance(value, bool):
            raise ConfigError(f"{key}={value!r} must be True or False")


def _default_run_dir(trainer: pl.Trainer, resume: bool) -> Path:
    """``<log_dir>/nocollapse`` (Lightning's loggers version ``log_dir``), or the first of
    ``nocollapse_1``, ``nocollapse_2``, ... that holds no run when it does."""
    root = Path(trainer.log_dir or trainer.default_root_dir)
    path, index = root / DEFAULT_FOLDER, 0
    while not resume and any((path / name).exists() for name in RUN_FILES):
        index += 1
        path = root / f"{DEFAULT_FOLDER}_{index}"
    return path


def _weight_decay(trainer: pl.Trainer) -> float | None:
    """The first optimiser's first parameter group's weight decay (the theory's ``eta``)."""
    for optimizer in trainer.optimizers:
        for group in optimizer.param_groups:
            decay = group.get("weight_decay")
            return float(decay) if isinstance(decay, int | float) else None
    return None
