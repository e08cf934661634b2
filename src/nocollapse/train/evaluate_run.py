"""Evaluate a saved run: k-NN and linear probe on the frozen encoder of its last checkpoint."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import torch

from nocollapse.errors import ConfigError, DataError
from nocollapse.evaluate import (
    encoder_in_eval_mode,
    extract_features,
    knn_accuracy,
    linear_probe,
)
from nocollapse.runio import EVALUATION_FILE, atomic_write_text
from nocollapse.train import setup
from nocollapse.train.checkpoint import load_checkpoint
from nocollapse.train.config import TrainConfig


def evaluate_run(run_dir: str | Path, *, knn: bool = True, linear: bool = True,
                 probe_epochs: int = 100, all_data: bool = False,
                 learner_factory: setup.LearnerFactory | None = None,
                 device: str = "cpu", data_dir: str | Path | None = None) -> dict[str, Any]:
    """Accuracies in [0, 1] of the run's encoder, written to ``RUN_DIR/evaluation.json``.

    Loads ``checkpoints/last.pt``, rebuilds the learner from the saved config, and
    encodes the train and test splits (normalised, not augmented). ``all_data``
    ignores the run's ``data.subset``/``data.test_subset``; ``data_dir`` replaces the
    run's ``data.data_dir`` (a data set that moved). Returns a dict with
    ``step``, ``knn_accuracy`` and/or ``linear_accuracy``, and the split sizes.
    """
    run_dir = Path(run_dir)
    torch_device = usable_device(device)
    saved = load_checkpoint(run_dir, map_location="cpu")
    config = TrainConfig.from_dict(saved["config"])
    if all_data:
        config.data = dataclasses.replace(config.data, subset=None, test_subset=None)
    if data_dir is not None:
        config.data = dataclasses.replace(config.data, data_dir=str(data_dir))
    data = setup.load_run_data(config)
    if data.test is None or int(data.test.labels.min()) < 0:
        raise DataError(f"{config.data.name} has no labelled test split to evaluate on; "
                        "evaluate a run trained on a data set with a test split")
    c, h, _ = data.train.image_shape
    learner = (learner_factory or setup.default_learner)(config, c, h)
    learner.load_state_dict(saved["model"])
    learner.to(torch_device)
    encode = learner.encode
    with encoder_in_eval_mode(learner):
        train_x = extract_features(encode, data.train.images, preset=data.preset, device=device)
        test_x = extract_features(encode, data.test.images, preset=data.preset, device=device)
    result: dict[str, Any] = {"step": saved["step"], "epoch": saved["epoch"],
                              "train_images": len(data.train), "test_images": len(data.test)}
    if knn:
        result["knn_accuracy"] = knn_accuracy(train_x, data.train.labels, test_x,
                                              data.test.labels, k=config.eval.knn_k,
                                              t=config.eval.knn_t)
    if linear:
        with torch.random.fork_rng():
            result["linear_accuracy"] = linear_probe(train_x, data.train.labels, test_x,
                                                     data.test.labels, epochs=probe_epochs,
                                                     seed=config.seed)
    atomic_write_text(run_dir / EVALUATION_FILE, json.dumps(result, indent=2))
    return result


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
