"""``CollapseCallback``: nocollapse's collapse monitor inside a Lightning ``Trainer``.

The module's ``training_step`` returns the two views' embeddings beside the loss
(``{"loss": loss, "z1": z0, "z2": z1}``), or ``views=fn(outputs, batch, module)`` picks
them; the callback hands them to :class:`nocollapse.monitor.Monitor` after each
optimiser step, logs the diagnostics through the Trainer's loggers (under
``nocollapse/``) and to its run directory, and with ``stop_on_collapse`` stops the
Trainer at a confirmed collapse (``trainer.should_stop``, decided on global rank 0).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, cast

import lightning.pytorch as pl
import torch

from nocollapse.monitor import Monitor, MonitorInputError

ViewsFunction = Callable[[object, object, "pl.LightningModule"], tuple[torch.Tensor, torch.Tensor]]
PREDICTOR_ATTRIBUTES = ("prediction_head", "predictor")  # lightly's name, then the common one
LOG_PREFIX = "nocollapse/"


class CollapseCallback(pl.Callback):
    """Collapse diagnostics, warnings and an optional stop, for any two-view SSL module.

    ``run_dir``: where the run files go (default ``<trainer.log_dir>/nocollapse``);
    ``views``: a function ``(outputs, batch, module) -> (z1, z2)`` when ``training_step``
    does not return ``z1`` and ``z2``; ``predictor``: the predictor module, the name of
    the module's attribute that holds it, or ``"auto"`` (``prediction_head``, then
    ``predictor``; an ``nn.Identity`` there means no predictor; a linear one gives the
    spectra of ``Wp``). ``stop_gradient``: ``True``/``False`` when you know it, or
    ``"auto"``: whether the target embeddings carry gradient, read from the output's
    ``targets`` (the tensors the loss compares the predictions to) or else from the
    returned views themselves, as lightly's examples return them (``z`` detached in
    ``forward``); ``None``: unknown. ``options``: :class:`~nocollapse.monitor.MonitorConfig`
    fields (``every``, ``patience``, ``rank_drop``, ...).
    """

    def __init__(self, run_dir: str | Path | None = None, *, views: ViewsFunction | None = None,
                 predictor: str | torch.nn.Module | None = "auto",
                 stop_gradient: bool | Literal["auto"] | None = "auto",
                 stop_on_collapse: bool = False, **options: Any) -> None:
        super().__init__()
        self.run_dir = None if run_dir is None else Path(run_dir)
        self.views, self.predictor, self.stop_gradient = views, predictor, stop_gradient
        self.stop_on_collapse = stop_on_collapse
        self.options = options
        self.monitor: Monitor | None = None
        self._saved_state: dict[str, object] | None = None
        self._last_step = -1
        self.stopped_at: int | None = None

    # -- Lightning hooks ------------------------------------------------------------------------
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after Lightning restored a checkpoint (load_state_dict): a resumed fit continues
        # the run directory and the monitor's state
        if not trainer.is_global_zero:
            return
        if self.run_dir is None:
            root = trainer.log_dir or trainer.default_root_dir
            self.run_dir = Path(root) / "nocollapse"
        resume = self._saved_state is not None
        self.monitor = Monitor(self.run_dir, resume=resume, stop_on_collapse=False,
                               **self.options)
        if self._saved_state is not None:
            self.monitor.load_state_dict(self._saved_state)
            self._saved_state = None

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: object, batch: object, batch_idx: int) -> None:
        step = trainer.global_step
        if step <= self._last_step:  # gradient accumulation: one observation per step
            return
        self._last_step = step
        collapsed = False
        if self.monitor is not None:
            collapsed = self._observe(trainer, pl_module, outputs, batch, step)
        # one decision for every process (rank 0 holds the monitor)
        if self.stop_on_collapse and trainer.strategy.broadcast(collapsed, src=0):
            self.stopped_at = step
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.monitor is not None:
            self.monitor.end_epoch(trainer.current_epoch + 1)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.monitor is not None:
            self.monitor.close(None if self.stopped_at is None
                               else f"collapse at step {self.stopped_at}")

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                     exception: BaseException) -> None:
        if self.monitor is not None:
            self.monitor.close(f"interrupted ({type(exception).__name__})")

    def state_dict(self) -> dict[str, object]:
        return {} if self.monitor is None else self.monitor.state_dict()

    def load_state_dict(self, state_dict: dict[str, object]) -> None:
        if state_dict:  # applied when the fit starts
            self._saved_state = state_dict
            last = state_dict.get("last_step")
            self._last_step = last if isinstance(last, int) and last else -1

    # -- helpers ------------------------------------------------------------------------
    def _observe(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: object,
                 batch: object, step: int) -> bool:
        """Hand the step to the monitor and its record to the loggers; True on a new warning."""
        assert self.monitor is not None
        z1, z2 = (self.views(outputs, batch, pl_module) if self.views is not None
                  else _returned_views(outputs))
        context = self.monitor.core.warning.context
        predictor, evidence = self._predictor(pl_module, outputs)
        if evidence:
            context["predictor_evidence"] = evidence
        self._infer_stop_gradient(outputs, z1, z2, context)
        before = len(self.monitor.warnings)
        # the monitor checks the loss it is given and names a wrong type
        loss = cast(torch.Tensor | float | None,
                    outputs.get("loss") if isinstance(outputs, Mapping) else outputs)
        record = self.monitor.observe(
            step, z1, z2, predictor=predictor, loss=loss,
            target_momentum=outputs.get("target_momentum") if isinstance(outputs, Mapping)
            else None,
            weight_decay=_weight_decay(trainer))
        if record is not None:
            scalars = {LOG_PREFIX + key: float(value) for key, value in record.items()
                       if key not in {"step", "epoch"} and isinstance(value, int | float)
                       and not isinstance(value, bool)}
            for logger in trainer.loggers:
                logger.log_metrics(scalars, step=step)
        return len(self.monitor.warnings) > before

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

    def _infer_stop_gradient(self, outputs: object, z1: torch.Tensor, z2: torch.Tensor,
                             context: dict[str, object]) -> None:
        if self.stop_gradient != "auto":
            if self.stop_gradient is not None:
                context["stop_gradient"] = self.stop_gradient
            return
        targets = outputs.get("targets") if isinstance(outputs, Mapping) else None
        where = "the targets returned by training_step"
        if targets is None:
            targets, where = (z1, z2), "the embeddings returned by training_step"
        carries = any(isinstance(t, torch.Tensor) and t.requires_grad for t in targets)
        context["stop_gradient"] = not carries
        context["stop_gradient_evidence"] = (
            f"{where} carry gradient; if your loss detaches them itself, pass "
            "CollapseCallback(stop_gradient=True)" if carries else "")


def _returned_views(outputs: object) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(outputs, Mapping) and "z1" in outputs and "z2" in outputs:
        return outputs["z1"], outputs["z2"]
    got = sorted(outputs) if isinstance(outputs, Mapping) else type(outputs).__name__
    raise MonitorInputError(
        f"training_step returned {got}; return {{'loss': loss, 'z1': z1, 'z2': z2}} (the two "
        "views' embeddings) or pass CollapseCallback(views=fn) with fn(outputs, batch, "
        "module) -> (z1, z2)")


def _weight_decay(trainer: pl.Trainer) -> float | None:
    """The first optimiser's first parameter group's weight decay (the theory's ``eta``)."""
    for optimizer in trainer.optimizers:
        for group in optimizer.param_groups:
            decay = group.get("weight_decay")
            return float(decay) if isinstance(decay, int | float) else None
    return None
