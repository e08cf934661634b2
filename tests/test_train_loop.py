"""The training loop: run directory, exact resume, divergence, damaged checkpoints."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from _cli import overrides
from _numeric import eigh_error, unit_roundoff
from nocollapse.errors import TrainingDivergedError
from nocollapse.methods import Learner, StepOutput
from nocollapse.runio import read_config, read_metrics
from nocollapse.train import (
    BaseCallback,
    CheckpointError,
    checkpoint_path,
    load_checkpoint,
    load_config,
    train,
)

BASE = ["data.name=digits", "data.batch_size=64", "data.subset=256", "data.test_subset=128",
        "log_every=2", "eval.knn_k=20", "eval.knn_every=4", "device.accelerator=cpu",
        "optim.lr=0.05", "optim.warmup_epochs=1", "seed=3",
        # a fixed thread count: the tuner's probes would change the sums of an exact resume
        "device.threads=1"]


# The real SiameseLearner with small heads, so that each test takes seconds.
SMALL = ["learner.proj_hidden_dim=32", "learner.proj_dim=16", "learner.pred_hidden_dim=16"]


def _config(out: Path, *extra: str):
    return load_config(None, overrides([*BASE, *SMALL, f"out={out}"], *extra))


def _steps(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Throughput and wall times depend on the machine; everything else must match exactly.
    return [{k: v for k, v in r.items() if k not in ("images_per_s", "train_seconds")}
            for r in records]


def test_run_writes_config_metrics_and_checkpoint(tmp_path: Path) -> None:
    result = train(_config(tmp_path / "run", "epochs=2"), quiet=True)
    run = result.run_dir
    assert read_config(run)["data"]["name"] == "digits"
    records = read_metrics(run)
    logged = [r for r in records if "loss" in r]
    assert [r["step"] for r in logged] == [2, 4, 6, 8]  # 256 / 64 = 4 steps an epoch
    assert {r["threads"] for r in logged} == {1}
    assert all(math.isfinite(r["loss"]) and r["images_per_s"] > 0 for r in logged)
    assert logged[0]["lr"] < logged[-2]["lr"]  # warm-up over the first epoch
    assert any("knn_accuracy" in r for r in records)
    saved = load_checkpoint(run)
    assert saved["step"] == 8 and saved["epoch"] == 2
    assert {"model", "optimizer", "scheduler", "rng", "predictor_matrix", "F_hat"} <= set(saved)
    assert 0.0 <= result.knn_accuracy <= 1.0


class _InterruptAt(BaseCallback):
    """Callback that stops the process at a log step, like Ctrl-C or a killed job."""

    def __init__(self, step: int):
        self.step = step

    def on_log(self, step: int, output: StepOutput, learner: Learner,
               record: dict[str, Any]) -> None:
        if step == self.step:
            raise KeyboardInterrupt


def test_checkpoint_holds_the_spectral_predictor_and_f_hat(tmp_path: Path) -> None:
    result = train(_config(tmp_path / "run", "epochs=1", "method=directpred"), quiet=True)
    saved = load_checkpoint(result.run_dir)
    assert saved["predictor_matrix"].shape == saved["F_hat"].shape == (16, 16)
    # DirectPred builds Wp from F_hat's eigenvectors (docs/theory.md#tian2021): they commute.
    wp, f = saved["predictor_matrix"].double(), saved["F_hat"].double()
    # Wp is an exact function of F_hat + E (the float32 solver's backward error), so
    # ||Wp F - F Wp|| = ||[Wp, E]|| <= 2 ||Wp|| ||E||; plus Wp's float32 rounding (2u ||Wp||
    # ||F||); Frobenius norms bound the spectral ones
    tol = (2 * eigh_error(1.0, f.shape[0]) + 2 * unit_roundoff()) * float(f.norm() * wp.norm())
    assert torch.allclose(wp @ f, f @ wp, atol=tol, rtol=0)


@pytest.mark.parametrize("method", [
    ["method=byol"],
    # DirectPred rebuilding Wp on the worker thread after the step (update=after) every
    # 3 steps: the rebuild schedule (a host-side count) must survive the resume.
    ["method=directpred", "learner.freq=3", "learner.background=true"],
])
def test_checkpoint_and_resume_equals_uninterrupted_run(tmp_path: Path,
                                                        method: list[str]) -> None:
    # log_every=3 puts the epoch-end checkpoint (step 4) inside a log window.
    # BYOL: the EMA target and its tau schedule must be restored too.
    whole = train(_config(tmp_path / "whole", "epochs=3", "log_every=3", *method),
                  quiet=True)
    split = _config(tmp_path / "split", "epochs=3", "log_every=3", *method)
    with pytest.raises(KeyboardInterrupt):
        train(split, quiet=True, callbacks=[_InterruptAt(9)])
    assert load_checkpoint(split.out)["step"] == 8
    resumed = train(split, resume=True, quiet=True)
    assert resumed.step == whole.step == 12
    first = _steps(read_metrics(whole.run_dir))
    second = _steps(read_metrics(resumed.run_dir))
    assert [r["step"] for r in first if "loss" in r] == [3, 6, 9, 12]
    assert first == second
    a, b = load_checkpoint(whole.run_dir)["model"], load_checkpoint(resumed.run_dir)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


class _CountLogs(BaseCallback):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_log(self, step: int, output: StepOutput, learner: Learner,
               record: dict[str, Any]) -> None:
        self.steps.append(step)


def test_a_kill_during_the_final_evaluation_keeps_the_training(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The final checkpoint is written before the final evaluation: a run killed while it
    evaluates resumes without training a step, and ends as an uninterrupted run."""
    import nocollapse.train.loop as loop

    whole = train(_config(tmp_path / "whole", "epochs=2"), quiet=True)
    split = _config(tmp_path / "split", "epochs=2")
    evaluate = loop.final_evaluation

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "final_evaluation", killed)
    with pytest.raises(KeyboardInterrupt):
        train(split, quiet=True)
    saved = load_checkpoint(split.out)
    assert saved["step"] == 8 and saved["evaluating"] and not saved["finished"]
    monkeypatch.setattr(loop, "final_evaluation", evaluate)
    logs = _CountLogs()
    resumed = train(split, resume=True, quiet=True, callbacks=[logs])
    assert logs.steps == []  # it only evaluated
    assert resumed.step == 8 and resumed.knn_accuracy == whole.knn_accuracy
    assert _steps(read_metrics(whole.run_dir)) == _steps(read_metrics(resumed.run_dir))
    assert load_checkpoint(split.out)["finished"]


class _PoisonAt(BaseCallback):
    """Callback that turns the weights to NaN at a log step, as a too-large lr would."""

    def __init__(self, step: int):
        self.step = step

    def on_log(self, step: int, output: StepOutput, learner: Learner,
               record: dict[str, Any]) -> None:
        record["callback_saw"] = step
        if step == self.step:
            with torch.no_grad():
                for p in learner.parameters():
                    p.fill_(float("nan"))


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    config = _config(tmp_path / "run", "epochs=3")
    with pytest.raises(TrainingDivergedError, match=r"step 7 .*lower learning rate"):
        train(config, quiet=True, callbacks=[_PoisonAt(6)])
    saved = load_checkpoint(config.out)
    assert saved["step"] == 4  # end of epoch 1, written before the loss diverged
    assert all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())
    assert next(r for r in read_metrics(config.out) if "loss" in r)["callback_saw"] == 2
    summary = json.loads((Path(config.out) / "summary.json").read_text())
    assert summary["stopped"] == "diverged at step 7"


def test_truncated_checkpoint_gives_clear_error_and_is_not_overwritten(tmp_path: Path) -> None:
    config = _config(tmp_path / "run", "epochs=1")
    train(config, quiet=True)
    path = checkpoint_path(config.out)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"last\.pt is truncated or corrupt.*--resume"):
        train(_config(tmp_path / "run", "epochs=2"), resume=True, quiet=True)
    assert path.read_bytes() == data[: len(data) // 2]


def test_fresh_run_refuses_a_directory_holding_a_run(tmp_path: Path) -> None:
    config = _config(tmp_path / "run", "epochs=1")
    train(config, quiet=True)
    with pytest.raises(Exception, match="--resume"):
        train(config, quiet=True)
