"""Evaluate a saved run by the standard protocol: its last checkpoint's frozen encoder on the
full train/test splits (k-NN at k=``eval.knn_k`` and 20, linear probe), with baselines."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from nocollapse.errors import ConfigError, DataError
from nocollapse.evaluate import BASELINES, QUIET, EvalProgress
from nocollapse.models import non_finite
from nocollapse.rundir.checkpoint import CheckpointError, load_checkpoint
from nocollapse.rundir.embedding import write_embedding_sample
from nocollapse.runio import EVALUATION_FILE, write_evaluation
from nocollapse.runio.records import EvaluationFile
from nocollapse.train import setup
from nocollapse.train.config import TrainConfig
from nocollapse.train.final_eval import final_evaluation

__all__ = ["EVALUATION_FILE", "evaluate_run", "usable_device"]


def evaluate_run(run_dir: str | Path, *, linear: bool = True, probe_epochs: int = 100,
                 baselines: bool = False, learner_factory: setup.LearnerFactory | None = None,
                 device: str = "cpu", data_dir: str | Path | None = None,
                 progress: EvalProgress = QUIET) -> EvaluationFile:
    """Accuracies in [0, 1] of the run's encoder, written to ``RUN_DIR/evaluation.json``.

    Loads ``checkpoints/last.pt``, rebuilds the learner from the saved config and
    measures it on the full splits (whatever subsets it trained on). ``baselines``
    adds raw pixels, the random-init encoder and the supervised bound (trained for
    the run's planned steps, or ``eval.supervised_steps``), each cached per data set.
    ``data_dir`` replaces the run's ``data.data_dir`` (a data set that moved);
    ``progress`` shows each phase.
    Returns the step, the protocol, split sizes, ``trained`` and ``baselines`` figures,
    and ``knn_accuracy`` / ``linear_accuracy`` (the trained encoder's headline figures).
    """
    run_dir = Path(run_dir)
    torch_device = usable_device(device)
    saved = load_checkpoint(run_dir, map_location="cpu")
    config = TrainConfig.from_dict(saved["config"])
    config.eval = dataclasses.replace(config.eval, probe_epochs=probe_epochs,
                                      baselines=list(BASELINES) if baselines else [])
    if data_dir is not None:
        config.data = dataclasses.replace(config.data, data_dir=str(data_dir))
    data = setup.load_run_data(config)
    c, h, _ = data.train.image_shape
    factory = learner_factory or setup.default_learner
    _check_weights(run_dir, saved["model"], factory, config, c, h)
    learner = factory(config, c, h)
    learner.load_state_dict(saved["model"])
    learner.to(torch_device)
    planned = setup.total_steps(config, setup.steps_per_epoch(config, len(data.train), 1))
    evaluation = final_evaluation(config, learner, data, planned, torch_device, linear=linear,
                                  progress=progress)
    if evaluation is None:
        raise DataError(f"{config.data.name} has no labelled test split to evaluate on; "
                        "evaluate a run trained on a data set with a test split")
    trained = evaluation["trained"]
    result: EvaluationFile = {"step": saved["step"], "epoch": saved["epoch"], **evaluation,
                              "knn_accuracy": trained[evaluation["headline"]],
                              "linear_accuracy": trained.get("linear_probe")}
    write_evaluation(run_dir, result)
    if data.test is not None:
        write_embedding_sample(run_dir, learner, data.test, data.preset,
                               config.learner.backbone, config.seed,
                               config.eval.embedding_points, torch_device)
    return result


def _check_weights(run_dir: Path, model: object, factory: setup.LearnerFactory,
                   config: TrainConfig, channels: int, size: int) -> None:
    """The checkpoint's weights are finite and fit the learner its config describes,
    checked on the meta device (nothing allocated: a config naming a huge projector next
    to small weights is refused before it is built)."""
    path = run_dir / "checkpoints" / "last.pt"
    if not isinstance(model, dict):
        raise CheckpointError(f"checkpoint {path} holds no model weights; it is damaged")
    bad = [name for name, _ in non_finite(model.items())]
    if bad:
        raise CheckpointError(
            f"checkpoint {path} holds non-finite weights ({bad[0]}"
            f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}): the run diverged or the "
            "file is damaged, and its accuracy would mean nothing. Evaluate a good checkpoint")
    with torch.device("meta"):
        expected = factory(config, channels, size).state_dict()
    shapes = {name: tuple(value.shape) for name, value in model.items()
              if isinstance(value, torch.Tensor)}
    wanted = {name: tuple(value.shape) for name, value in expected.items()}
    if shapes != wanted:
        differ = sorted(set(shapes) ^ set(wanted)) or sorted(
            name for name in wanted if shapes[name] != wanted[name])
        raise CheckpointError(
            f"checkpoint {path} does not fit the learner its own config describes (method "
            f"{config.method}; first difference: {differ[0][:80]}); it was damaged or edited. "
            "Evaluate the run directory that wrote it")


def usable_device(name: str) -> torch.device:
    """``torch.device(name)`` once a tensor can be placed there; else a ConfigError."""
    try:
        device = torch.device(name)
        torch.zeros(1, device=device)
    except (RuntimeError, AssertionError, ValueError) as error:
        raise ConfigError(f"--device {name!r} cannot be used here ({type(error).__name__}: "
                          f"{str(error).splitlines()[0] if str(error) else ''}); use cpu, or "
                          "cuda / cuda:N on a machine with a GPU") from error
    return device
