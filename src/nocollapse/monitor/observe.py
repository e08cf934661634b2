"""``Monitor``: the collapse monitor for a training loop nocollapse did not write.

>>> monitor = Monitor("runs/mine", stop_gradient=True)
>>> for step, (x1, x2) in enumerate(loader):
...     z1, z2 = projector(backbone(x1)), projector(backbone(x2))
...     loss = ...
...     monitor.observe(step, z1, z2, predictor=predictor, loss=loss)
>>> monitor.close()

Plain tensors in; out, in ``run_dir``, the files a ``nocollapse train`` run writes
(docs/run-directory.md): ``metrics.jsonl`` (one line every ``every`` steps),
``spectra.jsonl`` (one line per :meth:`Monitor.end_epoch`), ``warnings.jsonl``,
``summary.json`` (at :meth:`Monitor.close`) and ``config.yaml`` (the monitor's options
and the facts it was given), so ``nocollapse report RUN_DIR`` draws it. The diagnostics
are the training monitor's own (:class:`~nocollapse.monitor.CollapseMonitor`); this
class checks the input, keeps the loss and the running correlation ``F_hat`` (the mean
of ``z z^T`` over the diagnosed batches of the epoch: the predictor's input
correlation of DirectPred) and writes the files.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import torch
from rich.console import Console

from nocollapse.errors import ConfigError
from nocollapse.monitor.core import CollapseMonitor, MonitorConfig
from nocollapse.monitor.inputs import (
    MonitorInputError,
    check_finite_views,
    check_optional_number,
    check_step,
    check_views,
    predictor_matrix,
)
from nocollapse.monitor.warnings import CollapseDetected
from nocollapse.runio import (
    CHECKPOINT_DIR,
    METRICS_FILE,
    RUN_FILES,
    SPECTRA_FILE,
    SUMMARY_FILE,
    WARNINGS_FILE,
    MetricsWriter,
    ensure_dir,
    read_config,
    truncate_jsonl,
    write_config,
    write_summary,
)
from nocollapse.runio.lock import RunLock
from nocollapse.runio.records import Summary, WarningLine

MAX_CORRELATION_DIM = 4096  # F_hat is (d, d) float64 on the embeddings' device: 128 MiB here


def monitor_config(config: MonitorConfig | None = None,
                   options: Mapping[str, Any] | None = None) -> MonitorConfig:
    """``config`` with ``options`` (any :class:`MonitorConfig` field) applied, validated.

    An unknown option or a value out of range raises
    :class:`~nocollapse.errors.ConfigError` naming it.
    """
    options = dict(options or {})
    if config is not None and not isinstance(config, MonitorConfig):
        raise ConfigError(f"config is a {type(config).__name__}; pass a MonitorConfig (or "
                          "its fields as keyword options: every=20, patience=3, ...)")
    fields = {f.name: f.type for f in dataclasses.fields(MonitorConfig)}
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise ConfigError(f"unknown monitor option {', '.join(unknown)}; valid: "
                          f"{', '.join(sorted(fields))}")
    for name, value in options.items():
        kind = {"int": int, "bool": bool, "float": float}.get(str(fields[name]))
        wrong = (kind is bool and not isinstance(value, bool)) or (
            kind in (int, float) and (isinstance(value, bool) or not isinstance(
                value, int if kind is int else int | float)))
        if wrong:
            raise ConfigError(f"monitor option {name}={value!r} must be "
                              f"{'a whole number' if kind is int else 'a ' + str(fields[name])}")
    return dataclasses.replace(config or MonitorConfig(), **options).validate()


def infer_stop_gradient(targets: Sequence[object], where: str) -> tuple[bool | None, str]:
    """Whether the target branch is detached, read from the tensors the loss compares
    the predictions to: ``(stop_gradient, evidence)``; ``(None, "")`` without a tensor.

    No target carries gradient: a stop-gradient; one does: none (the evidence says how
    to correct a loss that detaches its targets itself).
    """
    tensors = [t for t in targets if isinstance(t, torch.Tensor)]
    if not tensors:
        return None, ""
    if any(t.requires_grad for t in tensors):
        return False, (f"{where} carry gradient; if your loss detaches them itself, pass "
                       "stop_gradient=True")
    return True, ""


StopGradient = bool | Literal["auto"] | None


@dataclasses.dataclass(frozen=True)
class _Views:
    z1: torch.Tensor
    z2: torch.Tensor | None


class Monitor:
    """Collapse diagnostics for your own loop: ``observe`` each step, ``end_epoch``, ``close``.

    ``run_dir``: the folder to write (created; refused when it already holds a run's
    files, unless ``resume=True``). Facts for the likely causes a warning names, when you
    know them: ``predictor_kind`` (``"none"``: no predictor; otherwise inferred from
    ``observe(predictor=...)``), ``stop_gradient`` (whether the target branch is
    detached; ``"auto"``, the default: inferred at each ``observe`` from whether its
    ``targets``, or else ``z1`` and ``z2``, carry gradient, as the Lightning callback
    does; ``None``: unknown), ``weight_decay`` (also taken from ``observe``). ``name``:
    the run's name in report legends (default: the folder's). ``config`` and
    ``options`` (any :class:`MonitorConfig` field: ``every``, ``patience``,
    ``stop_on_collapse``, ``rank_drop``, ...) set the thresholds; a bad one raises
    :class:`~nocollapse.errors.ConfigError` before the folder is created.
    """

    def __init__(self, run_dir: str | Path, *, config: MonitorConfig | None = None,
                 predictor_kind: str | None = None, stop_gradient: StopGradient = "auto",
                 weight_decay: float | None = None, resume: bool = False,
                 name: str | None = None, console: Console | None = None,
                 **options: Any) -> None:
        config = monitor_config(config, options)
        if stop_gradient not in (True, False, None, "auto"):
            raise ConfigError(f"stop_gradient={stop_gradient!r} must be True, False, 'auto' "
                              "or None")
        if name is not None and (not isinstance(name, str) or not name.strip()):
            raise ConfigError(f"name={name!r} must be a non-empty string or None")
        self._infer_stop_gradient = stop_gradient == "auto"
        declared = None if stop_gradient == "auto" else stop_gradient
        context: dict[str, object] = {"stop_gradient": declared, "predictor": predictor_kind,
                                   "weight_decay": check_optional_number(
                                       "weight_decay", weight_decay, 0.0, float("inf"))}
        context = {k: v for k, v in context.items() if v is not None}
        self.run_dir = Path(run_dir)
        present = [name for name in RUN_FILES if (self.run_dir / name).exists()]
        if present and not resume:
            raise ConfigError(f"{self.run_dir} already holds a run ({', '.join(present)}); "
                              "choose another run_dir, or pass resume=True to continue it")
        if present:
            _refuse_foreign_run(self.run_dir)
        ensure_dir(self.run_dir, "monitor run directory")
        # one writer at a time (another Monitor, a `nocollapse train`), until close()
        self._lock: RunLock | None = RunLock(self.run_dir)
        self._declared_predictor = predictor_kind is not None
        self.core = CollapseMonitor(config, self.run_dir, context, console)
        if not present:
            written: dict[str, object] = {"command": "monitor",
                                          "monitor": dataclasses.asdict(config),
                                          "context": context}
            if name is not None:
                written["name"] = name
            write_config(self.run_dir, written)
        self._writer: MetricsWriter | None = MetricsWriter(self.run_dir, METRICS_FILE)
        self._started = time.monotonic()
        self._seconds = 0.0  # from earlier sessions (resume)
        self.last_step: int | None = None
        self.epoch = 0
        self._last_epoch: int | None = None  # the last end_epoch's argument
        self.stopped: str | None = None
        self._loss_sum: torch.Tensor | float = 0.0
        self._loss_count = 0
        self._wp: torch.Tensor | None = None
        self._f_sum: torch.Tensor | None = None
        self._f_count = 0

    # -- the loop's calls ------------------------------------------------------------------
    def observe(self, step: int, z1: torch.Tensor, z2: torch.Tensor, *,
                predictor: torch.nn.Module | torch.Tensor | None = None,
                target_momentum: float | None = None, weight_decay: float | None = None,
                loss: torch.Tensor | float | None = None,
                targets: Sequence[torch.Tensor] | None = None) -> dict[str, object] | None:
        """Look at one training step; returns the ``metrics.jsonl`` record when it logged one.

        ``z1, z2``: the two views' embeddings ``(B, d)`` (the projector's output, the
        predictor's input); ``predictor``: the predictor module or its ``(d, d)`` matrix
        (a linear one gives the spectra of ``Wp``); ``target_momentum``: the EMA rate of
        a momentum target (BYOL's ``tau``); ``weight_decay``; ``loss``: this step's loss
        (averaged over the steps between logs); ``targets``: the tensors the loss compares
        the predictions to, for the stop-gradient's inference (``stop_gradient="auto"``;
        without them ``z1`` and ``z2`` are read). Nothing is copied and no graph is touched:
        the monitor reads detached views. Every ``every`` steps (and the first) it checks
        the embeddings are finite, computes the diagnostics and appends one line; a
        warning prints a panel, appends to ``warnings.jsonl`` and, with
        ``stop_on_collapse``, raises :class:`CollapseDetected` after the line is written.
        """
        if self._writer is None:
            raise MonitorInputError(f"the monitor of {self.run_dir} is closed; create a new "
                                    "Monitor(..., resume=True) to continue")
        step = check_step(step, self.last_step)
        if self._infer_stop_gradient:
            self._read_stop_gradient(z1, z2, targets)
        z1, z2 = check_views(z1, z2)
        tau = check_optional_number("target_momentum", target_momentum, 0.0, 1.0)
        decay = check_optional_number("weight_decay", weight_decay, 0.0, float("inf"))
        loss_value = self._check_loss(loss)
        wp = None
        if predictor is not None:
            wp, kind = predictor_matrix(predictor, z1.shape[1])
            if not self._declared_predictor:
                context = self.core.warning.context
                context["predictor"] = kind
                if kind == "none":
                    context.setdefault("predictor_evidence", "the predictor given is an identity")
        self._wp = wp
        if decay is not None:
            self.core.warning.context["weight_decay"] = decay
        if loss_value is not None:
            self._loss_sum = self._loss_sum + loss_value
            self._loss_count += 1
        # the first step, then each step that reaches a new multiple of `every` (stateless
        # but for the last step, which state_dict keeps: a resumed loop logs the same steps)
        every = self.core.config.every
        due = self.core.config.enabled and every > 0 and (
            self.last_step is None or step // every > self.last_step // every)
        self.last_step = step
        if due:
            check_finite_views(step, z1, z2)
        record: dict[str, object] = {"step": step, "epoch": self.epoch}
        if due:
            record["loss"] = (float(self._loss_sum) / self._loss_count
                              if self._loss_count else None)
            record["tau"] = tau
            self._loss_sum, self._loss_count = 0.0, 0
            self._add_correlation(z1, z2)
        try:
            self.core.on_log(step, _Views(z1, z2), self, record, due=due)
        except CollapseDetected:
            self.stopped = f"collapse at step {step}"
            raise
        finally:
            if due:
                self._writer.write(record)
        return record if due else None

    def end_epoch(self, epoch: int) -> None:
        """Append the epoch's spectra line (``F_hat``, ``Wp``, the last batch) and start anew."""
        if self._writer is None:
            raise MonitorInputError(f"the monitor of {self.run_dir} is closed; create a new "
                                    "Monitor(..., resume=True) to continue")
        low = 0 if self._last_epoch is None else self._last_epoch + 1
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < low:
            raise MonitorInputError(f"epoch={epoch!r} must be a whole number >= {low} (each "
                                    "epoch ends once, in order)")
        self.core.on_epoch_end(epoch, self, self.run_dir)
        self.epoch = self._last_epoch = epoch
        self._f_sum, self._f_count = None, 0

    @property
    def last_epoch(self) -> int | None:
        """The last epoch :meth:`end_epoch` ended (``None``: none yet)."""
        return self._last_epoch

    def close(self, stopped: str | None = None, note: str | None = None) -> None:
        """Write ``summary.json`` (``stopped``: how the loop ended; ``note``: a remark)
        and close the files.

        A loop that observed steps but never called :meth:`end_epoch` has no spectra:
        ``close`` says so on the console and in the summary's ``note``.
        """
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        self.core.close()
        try:
            self._write_summary(stopped, note)
        finally:
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def _write_summary(self, stopped: str | None, note: str | None) -> None:
        self.stopped = stopped or self.stopped or "completed"
        if self._last_epoch is None and self.last_step is not None:
            missing = ("end_epoch() was never called: no spectra.jsonl, and the summary's "
                       "epoch is 0; call monitor.end_epoch(epoch) after each epoch")
            self.core.console.print(f"nocollapse.Monitor({self.run_dir}): {missing}")
            note = missing if note is None else f"{note}; {missing}"
        summary: Summary = {
            "step": self.last_step, "planned_steps": None, "epoch": self.epoch,
            "stopped": self.stopped, "note": note, "knn_accuracy": None,
            "random_knn_accuracy": None, "seconds": round(self.seconds, 2), "evaluation": None,
            "source": "nocollapse.Monitor", "warnings": len(self.core.warnings)}
        write_summary(self.run_dir, summary)

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is None or isinstance(error, CollapseDetected):
            self.close()
        else:
            self.close(f"interrupted ({kind.__name__})")

    # -- what the monitor has seen ------------------------------------------------------------
    @property
    def warnings(self) -> list[WarningLine]:
        """The warnings so far (the records of ``warnings.jsonl``)."""
        return self.core.warnings

    @property
    def seconds(self) -> float:
        return self._seconds + time.monotonic() - self._started

    def correlation(self) -> torch.Tensor | None:
        """``F_hat``: the mean ``z z^T / n`` of this epoch's diagnosed batches (both views)."""
        return None if self._f_sum is None else self._f_sum / self._f_count

    def predictor_matrix(self) -> torch.Tensor | None:
        """The last linear predictor matrix ``Wp`` observed, or ``None``."""
        return self._wp

    # -- resume -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, object]:
        """Everything a resumed loop needs to warn as an uninterrupted one (torch.save-able)."""
        return {"core": self.core.state_dict(), "last_step": self.last_step, "epoch": self.epoch,
                "last_epoch": self._last_epoch,
                "loss_sum": float(self._loss_sum), "loss_count": self._loss_count,
                "f_sum": None if self._f_sum is None else self._f_sum.cpu(),
                "f_count": self._f_count, "seconds": self.seconds,
                "context": dict(self.core.warning.context),
                # a declared stop-gradient stays declared in the resumed loop
                "infer_stop_gradient": self._infer_stop_gradient}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict` (with ``Monitor(..., resume=True)``).

        What the run directory got after that state was saved (lines of later steps and
        epochs, a ``summary.json``) goes, as a ``nocollapse train`` resume does, so the
        resumed loop writes the files of an uninterrupted one.
        """
        missing = sorted({"core", "last_step", "epoch", "loss_sum", "loss_count"}
                         - set(state if isinstance(state, dict) else {}))
        if missing:
            raise MonitorInputError(f"the state given to load_state_dict lacks {missing} "
                                    "(or is not a dict): pass what Monitor.state_dict() "
                                    "returned, saved with your checkpoint")
        last_step, last_epoch = state["last_step"], state.get("last_epoch")
        if self._writer is not None:
            self._writer.close()
        truncate_jsonl(self.run_dir / METRICS_FILE, "step", last_step)
        truncate_jsonl(self.run_dir / WARNINGS_FILE, "step", last_step)
        truncate_jsonl(self.run_dir / SPECTRA_FILE, "epoch", last_epoch)
        (self.run_dir / SUMMARY_FILE).unlink(missing_ok=True)
        self._writer = MetricsWriter(self.run_dir, METRICS_FILE)
        self.core.warning.context.update(state.get("context", {}))
        self._infer_stop_gradient = bool(state.get("infer_stop_gradient",
                                                   self._infer_stop_gradient))
        self.core.load_state_dict(state["core"])
        self.last_step, self.epoch, self._last_epoch = last_step, int(state["epoch"]), last_epoch
        self._loss_sum, self._loss_count = float(state["loss_sum"]), int(state["loss_count"])
        self._f_sum, self._f_count = state.get("f_sum"), int(state.get("f_count", 0))
        self._seconds, self._started = float(state.get("seconds", 0.0)), time.monotonic()

    # -- helpers ------------------------------------------------------------------------------
    def _read_stop_gradient(self, z1: object, z2: object,
                            targets: Sequence[object] | None) -> None:
        if targets is not None and not isinstance(targets, Sequence | torch.Tensor):
            raise MonitorInputError(f"targets is a {type(targets).__name__}; pass a tuple "
                                    "of tensors (the loss's targets) or None")
        found = ((targets,) if isinstance(targets, torch.Tensor) else targets
                 if targets is not None else (z1, z2))
        where = "the targets given to observe" if targets is not None else \
            "the embeddings given to observe"
        stop_gradient, evidence = infer_stop_gradient(found, where)
        if stop_gradient is not None:
            context = self.core.warning.context
            context["stop_gradient"] = stop_gradient
            context["stop_gradient_evidence"] = evidence

    def _check_loss(self, loss: object) -> torch.Tensor | float | None:
        if loss is None:
            return None
        if isinstance(loss, torch.Tensor):
            if loss.numel() != 1:
                raise MonitorInputError(f"loss has shape {tuple(loss.shape)}; pass the step's "
                                        "scalar loss")
            return loss.detach().float().reshape(())  # stays on its device: no sync
        if isinstance(loss, bool) or not isinstance(loss, int | float):
            raise MonitorInputError(f"loss is a {type(loss).__name__}; pass a number or a "
                                    "scalar tensor")
        return float(loss)

    def _add_correlation(self, z1: torch.Tensor, z2: torch.Tensor) -> None:
        if z1.shape[1] > MAX_CORRELATION_DIM:
            return
        z = torch.cat([z1, z2]).double()
        term = z.T @ z / z.shape[0]
        self._f_sum = term if self._f_sum is None else self._f_sum.to(term.device) + term
        self._f_count += 1


def _refuse_foreign_run(run_dir: Path) -> None:
    """``Monitor(resume=True)`` continues a Monitor's own run only: not a ``nocollapse
    train`` run (its summary and metrics would be overwritten) or a simulation."""
    try:
        command = read_config(run_dir).get("command")
    except (ConfigError, OSError):
        command = None
    if command != "monitor" or (run_dir / CHECKPOINT_DIR).exists():
        what = ("a nocollapse train run" if (run_dir / CHECKPOINT_DIR).exists()
                else f"a run whose config.yaml says command={command!r}" if command
                else "files of a run without a Monitor's config.yaml")
        raise ConfigError(f"{run_dir} holds {what}; Monitor(resume=True) continues only a "
                          "Monitor's own run, and leaves this one as it is: choose another "
                          "run_dir")
