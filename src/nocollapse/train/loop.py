"""The training loop: Lightning Fabric, batched on-device augmentation, logging, checkpoints.

Hot path: images stay uint8 on the device, both views are augmented there with a
seeded ``torch.Generator``, and nothing reads a device value back except at log
steps (every ``log_every`` steps), checkpoints and evaluations. Divergence is
detected without a per-step sync: each step folds ``isfinite(loss)`` into a
device-side record of the first bad step, which is read at the next log step or
checkpoint, and a run whose loss went NaN/inf never writes a checkpoint, so the
last good one stays.
"""

from __future__ import annotations

import contextlib
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import torch

from nocollapse.errors import TrainingDivergedError
from nocollapse.evaluate import EvalProgress
from nocollapse.methods import Learner, StepOutput
from nocollapse.monitor import CollapseDetected, CollapseMonitor
from nocollapse.rundir.checkpoint import (
    CheckpointError,
    checkpoint_path,
    restore_rng_state,
    rng_state,
    save_checkpoint,
)
from nocollapse.rundir.embedding import write_embedding_sample
from nocollapse.rundir.lock import (
    cut_extension_back,
    cut_outputs_to_checkpoint,
    open_run,
    retire_finished_outputs,
)
from nocollapse.rundir.resume import (
    check_counters,
    check_finite_state,
    check_optimizer_layout,
    check_planned_steps,
    extend_hint,
    is_finished,
)
from nocollapse.rundir.summary import (
    RunState,
    TrainResult,
    already_finished_result,
    random_knn,
    stop_note,
    summary_from_checkpoint,
    write_summary,
)
from nocollapse.runio import SUMMARY_FILE, MetricsWriter, plain_json, write_config
from nocollapse.runio.records import Checkpoint, Evaluation, TrainLogLine
from nocollapse.threads import tuner_for
from nocollapse.train import setup
from nocollapse.train.callbacks import (
    Callback,
    callback_states,
    check_callbacks,
    restore_callback_states,
)
from nocollapse.train.config import TrainConfig, run_context
from nocollapse.train.final_eval import final_evaluation
from nocollapse.train.knn_curve import KnnCurve
from nocollapse.train.progress import TrainProgress, run_header
from nocollapse.train.reference import measure_reference
from nocollapse.train.snapshot import PresuspectSnapshot

__all__ = ["TrainResult", "train"]


def train(config: TrainConfig, *, resume: bool = False, callbacks: Sequence[Callback] = (),
          quiet: bool = False, learner_factory: setup.LearnerFactory | None = None
          ) -> TrainResult:
    """Train ``config.method`` on ``config.data`` and write the run directory ``config.out``.

    ``resume=True`` continues the run in ``config.out`` from ``checkpoints/last.pt``
    exactly where it stopped (same batches, augmentations and learning rates);
    ``config`` may differ from the checkpoint's only where
    :func:`~nocollapse.rundir.resume.check_resume_changes` allows (ConfigError
    otherwise), and a finished run is returned untouched with ``stopped ==
    "already finished"``. The run directory is locked while the run goes.
    ``callbacks``: :class:`~nocollapse.train.callbacks.Callback` objects (``on_log``,
    ``on_epoch_end``, ``on_train_end``), called on global rank 0 only.
    ``learner_factory(config, in_channels, image_size)`` returns a
    :class:`~nocollapse.methods.Learner` to train instead of the ``SiameseLearner``.
    Raises :class:`TrainingDivergedError` when the loss becomes NaN or infinite.
    """
    run = _Run(config, resume, check_callbacks(list(callbacks)), quiet,
               learner_factory or setup.default_learner)
    return run.fit()


class _Run:
    def __init__(self, config: TrainConfig, resume: bool, callbacks: list[Callback], quiet: bool,
                 factory: setup.LearnerFactory):
        self.config, self.callbacks, self.quiet = config, callbacks, quiet
        # Everything that can refuse the configuration runs before the run directory is
        # created or touched: a bad option, data set or checkpoint leaves nothing behind.
        self.saved = setup.load_for_resume(config) if resume else None
        config, self.precision_why = setup.with_resolved_precision(
            config, self.saved["config"] if self.saved is not None else None)
        self.config = config
        self.data = setup.load_run_data(config)
        self.fabric = setup.make_fabric(config)
        self.rank0 = self.fabric.global_rank == 0
        c, h, _ = self.data.train.image_shape
        torch.manual_seed(config.seed)  # the same initial weights on every rank
        learner = setup.build_learner(factory, config, c, h)
        if not isinstance(learner, torch.nn.Module):
            raise TypeError(f"learner_factory returned a {type(learner).__name__}; a Learner "
                            "must be a torch.nn.Module")
        self.learner: Learner = learner
        if config.init_from is not None and self.saved is None:
            setup.load_initial_weights(learner, config.init_from)
        self.per_epoch = setup.steps_per_epoch(config, len(self.data.train),
                                               self.fabric.world_size)
        self.total = setup.total_steps(config, self.per_epoch)
        if self.saved is not None:
            stored = TrainConfig.from_dict(self.saved["config"])
            check_planned_steps(self.saved["config"], config.to_dict(),
                                setup.total_steps(stored, self.per_epoch), self.total,
                                self.per_epoch)
        self.finished = self.saved is not None and is_finished(self.saved, self.total)
        if self.finished:
            return  # nothing to do: the run directory is left untouched
        self.optimizer, self.scheduler = setup.build_optimizer(config, self.learner, self.total,
                                                               self.per_epoch)
        if self.saved is not None:
            self._check_saved(self.saved)  # a refused resume changes nothing
        self.augment = setup.build_augment(config, self.data.preset)
        self.run_dir = setup.prepare_run_dir(config, resume)
        self.lock = open_run(self.run_dir, fresh=not resume) if self.rank0 else None
        try:
            self._start()
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise

    def _start(self) -> None:
        """Everything after the lock: monitor, devices, state, config or restored checkpoint."""
        config = self.config
        if config.monitor.enabled:
            self.callbacks.append(CollapseMonitor(config.monitor, self.run_dir,
                                                  run_context(config),
                                                  log_every=config.log_every))
        learner = self.learner
        assert isinstance(learner, torch.nn.Module)  # checked in __init__
        self.device = self.fabric.device
        # torch.compile of a Module returns a Module (its stubs say a function)
        forward = (cast(torch.nn.Module, torch.compile(learner))
                   if setup.should_compile(config.device.compile, self.device) else learner)
        self.model, self.optimizer = self.fabric.setup(forward, self.optimizer)
        self.augment = self.augment.to(self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed * 1009 + self.fabric.global_rank)
        self.images = self.data.train.images.to(self.device)
        self.state = RunState()
        self.curve = KnnCurve(config.eval, self.data, self.learner, self.device, self.state,
                              self.rank0, bf16=config.device.precision == "bf16-mixed")
        self.tuner = tuner_for(self.device, fixed=config.device.threads is not None
                               or self.fabric.world_size > 1)
        self.writer: MetricsWriter | None = None
        # a finished run trained longer: its end (step) until the first new checkpoint
        self.superseded_end: int | None = None
        # the checkpoint on disk: (step, epoch, written before the final evaluation); None
        # when there is none yet or it is the run's end (the files already match it)
        self.last_saved: tuple[int, int, bool] | None = None
        self.loss_sum = torch.zeros((), device=self.device)
        self.first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        if self.saved is not None:
            self._restore(self.saved)
            self.saved = None  # free the checkpoint's tensors
        elif self.rank0:
            write_config(self.run_dir, config.to_dict())

    # -- the loop -----------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        if self.finished:
            return self._finished_result()
        try:
            return self._fit()
        except KeyboardInterrupt:
            self._cut_to_checkpoint()
            raise
        except TrainingDivergedError:
            if self._extension_pending():  # the finished run stays as it was
                self._cut_to_checkpoint()
            raise
        finally:
            if self.lock is not None:
                self.lock.release()

    def _extension_pending(self) -> bool:
        """A finished run trained longer, before the extension's first checkpoint."""
        return (self.superseded_end is not None and self.last_saved is not None
                and self.last_saved[0] == self.superseded_end)

    def _cut_to_checkpoint(self) -> None:
        """Stopped (Ctrl-C, SIGTERM) or an extension failed: ``metrics.jsonl``,
        ``spectra.jsonl`` and ``warnings.jsonl`` cut back to the checkpoint on disk, so the
        files end where it does (a finished run extended: its own end again). A file that
        cannot be rewritten now is cut by the resume."""
        if not self.rank0 or self.last_saved is None:
            return
        step, epoch, evaluating = self.last_saved
        with contextlib.suppress(OSError):
            if self._extension_pending():
                cut_extension_back(self.run_dir, step, epoch)
            else:
                cut_outputs_to_checkpoint(self.run_dir, step, epoch, final_too=evaluating)

    def _fit(self) -> TrainResult:
        state = self.state
        writer = self.writer = MetricsWriter(self.run_dir) if self.rank0 else None
        monitors = [c for c in self.callbacks if isinstance(c, CollapseMonitor)]
        self.snapshot = PresuspectSnapshot(self.run_dir, monitors[0] if monitors else None,
                                           self.rank0 and self.config.presuspect_snapshot)
        if state.step == 0:
            self.curve.initial(writer)
            self._reference()
            self.snapshot.tick(self._checkpoint)
        try:
            stopped = self._train_steps(writer)
        except TrainingDivergedError as error:
            if not self._extension_pending():
                self._write_summary(f"diverged at step {int(self.first_bad)}", None,
                                    str(error))
            raise
        except CollapseDetected as error:  # --stop-on-collapse: a checkpoint at the stop
            self.save()
            self._write_summary("collapse", None, str(error))
            raise
        finally:
            if writer:
                writer.close()
            for callback in self.callbacks:
                callback.on_train_end()
        final_knn, evaluation = self._final(stopped)
        return TrainResult(self.run_dir, state.step, state.epoch, stopped, final_knn,
                           random_knn(state, evaluation), state.knn_history, state.seconds,
                           self.total,
                           evaluation, stop_note(stopped, state.step, self.total))

    def _train_steps(self, writer: MetricsWriter | None) -> str:
        """Run steps until the planned total or the time budget; returns why it stopped."""
        config, state = self.config, self.state
        # The time budget counts this invocation only, so a budget-stopped run can be resumed.
        start, before = time.monotonic(), state.seconds
        window_start = time.monotonic()
        with TrainProgress(self.total, state.step, self.quiet or not self.rank0,
                           images_per_step=config.data.batch_size * self.fabric.world_size
                           ) as bar:
            bar.header(run_header(config.method, self.data.train.name, len(self.data.train),
                                  self.total, str(self.device), self.tuner is not None,
                                  f"{config.device.precision} ({self.precision_why})"))
            while state.step < self.total:
                order = self._epoch_order(state.epoch)
                while state.batch < self.per_epoch and state.step < self.total:
                    step_start = time.perf_counter()
                    output = self._step(order)
                    if self.tuner is not None:
                        self.tuner.record(time.perf_counter() - step_start)
                    bar.advance()
                    if state.step % config.log_every == 0:
                        line = self._log_line(time.monotonic() - window_start)
                        window_start = time.monotonic()
                        record = self._on_log(output, line)
                        if writer:
                            writer.write(record)
                        bar.show(line)
                    state.seconds = before + time.monotonic() - start
                    every = config.eval.knn_every
                    if every and state.step % every == 0 and state.step < self.total:
                        self.curve.record(writer)
                    if state.step % config.log_every == 0 and state.batch < self.per_epoch:
                        self.snapshot.tick(self._checkpoint)  # (an epoch's end: after it)
                    if config.time_budget_s and state.seconds - before > config.time_budget_s:
                        return "time_budget"
                if state.batch >= self.per_epoch:
                    self._end_epoch(writer)
                    if state.step % config.log_every == 0:
                        self.snapshot.tick(self._checkpoint)
        if config.max_steps is not None and state.step == config.max_steps and state.batch:
            return "max_steps"
        return "completed"

    def _reference(self) -> None:
        """The random-init encoder's rank on the first batch's shape, for the monitor."""
        monitors = [c for c in self.callbacks if isinstance(c, CollapseMonitor)]
        if not monitors or not self.rank0 or not self.config.monitor.enabled:
            return
        index = self._epoch_order(0)[:self.config.data.batch_size]
        measure_reference(monitors[0], self.learner, self.images[index], self.augment,
                          self.config.seed)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        # A permutation that depends only on (seed, epoch): a resumed run replays it.
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        order = torch.randperm(len(self.data.train), generator=generator)
        world, rank = self.fabric.world_size, self.fabric.global_rank
        return order[rank::world].to(self.device)

    def _step(self, order: torch.Tensor) -> StepOutput:
        state, size = self.state, self.config.data.batch_size
        index = order[state.batch * size:(state.batch + 1) * size]
        batch = self.images[index]
        view1 = self.augment(batch, self.generator)
        view2 = self.augment(batch, self.generator)
        output: StepOutput = self.model(view1, view2)
        self.optimizer.zero_grad(set_to_none=True)
        self.fabric.backward(output.loss)
        self.optimizer.step()
        state.step += 1
        state.batch += 1
        state.window_steps += 1
        self.tau = self.learner.update_target(state.step / self.total)
        self.scheduler.set(state.step)
        loss = output.loss.detach().float()
        self.loss_sum += loss
        bad = ~torch.isfinite(loss) & (self.first_bad < 0)
        self.first_bad = torch.where(bad, state.step, self.first_bad)
        return output

    def _log_line(self, seconds: float) -> TrainLogLine:
        """The loop's line of ``metrics.jsonl`` for the steps since the last one."""
        state = self.state
        self._check_finite()
        images = state.window_steps * self.config.data.batch_size * self.fabric.world_size
        line: TrainLogLine = {
            "step": state.step, "epoch": state.epoch + state.batch / self.per_epoch,
            "loss": float(self.loss_sum) / max(state.window_steps, 1),
            "lr": self.scheduler.lr_at(state.step - 1),
            "tau": None if self.tau is None else float(self.tau),
            "images_per_s": images / max(seconds, 1e-9), "threads": torch.get_num_threads()}
        self.loss_sum.zero_()
        state.window_steps = 0
        return line

    def _on_log(self, output: StepOutput, line: TrainLogLine) -> dict[str, object]:
        """The line with the keys the callbacks add (the collapse monitor's)."""
        record: dict[str, object] = {**line}
        if self.rank0:
            for callback in self.callbacks:
                callback.on_log(self.state.step, output, self.learner, record)
        return record

    def _check_finite(self) -> None:
        bad = int(self.first_bad)
        if bad >= 0:
            path = checkpoint_path(self.run_dir)
            kept = (f"the last good checkpoint is kept in {path}" if path.exists() else
                    "no checkpoint was written before it (it diverged within the first "
                    "checkpoint interval)")
            raise TrainingDivergedError(
                f"the loss became NaN or infinite at step {bad} (epoch {self.state.epoch}); "
                f"{kept}. Try a lower "
                f"learning rate (optim.lr={self.config.optim.lr}), a longer warm-up "
                "(optim.warmup_epochs), float32 precision (device.precision=32-true), or "
                "gradient-friendlier settings (smaller predictor_lr_scale)")

    def _end_epoch(self, writer: MetricsWriter | None) -> None:
        state, config = self.state, self.config
        state.epoch += 1
        state.batch = 0
        if self.rank0:
            for callback in self.callbacks:
                callback.on_epoch_end(state.epoch, self.learner, self.run_dir)
        if state.epoch % config.checkpoint_every == 0 and state.step < self.total:
            self.save()  # the last epoch's checkpoint is written by _final

    def _final(self, stopped: str) -> tuple[float | None, Evaluation | None]:
        # the trained state first: a kill during a long evaluation keeps the training, and
        # the resumed run only evaluates
        self.save(evaluating=True)
        knn, evaluation = None, None
        if self.rank0:
            evaluation = final_evaluation(
                self.config, self.learner, self.data, self.total, self.device,
                linear=self.config.eval.linear_probe, progress=EvalProgress(quiet=self.quiet),
                later_command=f"nocollapse evaluate {shlex.quote(str(self.run_dir))} --baselines")
            with MetricsWriter(self.run_dir) as writer:
                knn = self.curve.record(writer, final=True, evaluation=evaluation)
            if self.data.test is not None:
                write_embedding_sample(self.run_dir, self.learner, self.data.test,
                                       self.data.preset, self.config.learner.backbone,
                                       self.config.seed, self.config.eval.embedding_points,
                                       self.device)
        # the end goes into the checkpoint too: a kill before summary.json loses nothing
        self.save(finished=stopped != "time_budget", end=(stopped, evaluation))
        self._write_summary(stopped, knn, evaluation=evaluation)
        return knn, evaluation

    def _write_summary(self, stopped: str, knn: float | None, error: str | None = None,
                       evaluation: Evaluation | None = None) -> None:
        if self.rank0:
            write_summary(self.run_dir, self.state, self.total, stopped, knn, error, evaluation)

    # -- checkpoints ------------------------------------------------------------------------
    def save(self, finished: bool = False,
             end: tuple[str, Evaluation | None] | None = None, evaluating: bool = False) -> None:
        """Write the checkpoint; ``end``: how the run ended (``stopped``, ``evaluation``),
        saved with the final one so that a kill before ``summary.json`` loses nothing;
        ``evaluating``: the one written before the final evaluation."""
        self._check_finite()  # never replace the last good checkpoint with a diverged one
        if self.rank0:
            state = self._checkpoint()
            if end is not None:
                state["stopped"], state["evaluation"] = end[0], plain_json(end[1])
            state["finished"] = finished
            state["evaluating"] = evaluating
            save_checkpoint(checkpoint_path(self.run_dir), state)
            self.last_saved = None if end is not None else (
                self.state.step, self.state.epoch, evaluating)
            if self.superseded_end is not None:  # the new steps have their checkpoint now
                write_config(self.run_dir, self.config.to_dict())
                retire_finished_outputs(self.run_dir, self.superseded_end)
                self.superseded_end = None
                if self.writer is not None:
                    self.writer.reopen()  # metrics.jsonl was rewritten by a rename
        self.fabric.barrier()

    def _finished_result(self) -> TrainResult:
        """A finished run, untouched; only a ``summary.json`` lost to a kill after the final
        checkpoint is written again from that checkpoint (under the run's lock)."""
        run_dir, saved = Path(self.config.out), self.saved
        assert saved is not None  # a finished run is a resumed one
        restored = False
        if self.rank0 and not (run_dir / SUMMARY_FILE).exists():
            lock = open_run(run_dir, fresh=False)
            try:
                summary_from_checkpoint(run_dir, saved, self.total)
            finally:
                lock.release()
            restored = True
        result = already_finished_result(run_dir, saved)
        result.summary_restored = restored
        result.extend_hint = extend_hint(saved["config"], self.total + self.per_epoch,
                                         self.per_epoch)
        return result

    def _check_saved(self, saved: Checkpoint) -> None:
        """What a resume checks before the run directory is touched: the counters against
        this run's epoch length, the weights, the schedule, the optimiser's layout."""
        try:
            check_counters(saved, self.per_epoch)
            self.learner.load_state_dict(saved["model"])
            self.scheduler.load_state_dict(saved["scheduler"])
            check_optimizer_layout(self.optimizer, saved["optimizer"])
            check_finite_state(saved, checkpoint_path(self.config.out))
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
            raise self._unfit(error) from error

    def _unfit(self, error: Exception) -> CheckpointError:
        return CheckpointError(
            f"checkpoint {checkpoint_path(self.config.out)} does not fit this run "
            f"({type(error).__name__}: {str(error)[:300]}); it is damaged or was not "
            "written by nocollapse. Start the run again without --resume")

    def _checkpoint(self) -> Checkpoint:
        learner, state = self.learner, self.state
        matrix, F_hat = learner.predictor_matrix(), learner.correlation()
        return {"model": learner.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "rng": rng_state(self.generator),
                "step": state.step, "epoch": state.epoch, "batch": state.batch,
                "loss_sum": self.loss_sum.detach().cpu(), "window_steps": state.window_steps,
                "knn_history": state.knn_history, "random_knn": state.random_knn,
                "seconds": state.seconds, "monitor_seconds": state.monitor_seconds,
                "config": self.config.to_dict(),
                "predictor_matrix": None if matrix is None else matrix.detach().cpu(),
                "F_hat": None if F_hat is None else F_hat.detach().cpu(),
                "callbacks": callback_states(self.callbacks)}

    def _restore(self, saved: Checkpoint) -> None:
        try:  # the weights and the schedule were loaded by _check_saved
            self.optimizer.load_state_dict(saved["optimizer"])
            restore_rng_state(saved["rng"], self.generator)
            state = self.state
            state.step, state.epoch, state.batch = saved["step"], saved["epoch"], saved["batch"]
            state.window_steps, state.seconds = saved["window_steps"], saved["seconds"]
            state.monitor_seconds = float(saved.get("monitor_seconds", 0.0))
            extending = bool(saved.get("finished"))  # a finished run, trained longer
            state.knn_history = [r for r in saved["knn_history"]
                                 if not (extending and r.get("final"))]
            state.random_knn = saved["random_knn"]
            self.loss_sum = saved["loss_sum"].to(self.device)
            restore_callback_states(self.callbacks, saved.get("callbacks") or {})
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as error:
            raise self._unfit(error) from error
        self.last_saved = (state.step, state.epoch, bool(saved.get("evaluating")))
        if extending:  # cut nothing of the finished run before the new steps' checkpoint
            self.superseded_end = state.step
            if self.rank0:  # but what an earlier extension, stopped, had logged past it
                cut_extension_back(self.run_dir, state.step, state.epoch)
        elif self.rank0:
            write_config(self.run_dir, self.config.to_dict())
            # killed during the final evaluation: its final k-NN line, if written, goes too
            cut_outputs_to_checkpoint(self.run_dir, state.step, state.epoch,
                                      final_too=bool(saved.get("evaluating")))

