"""The standard evaluation at the end of a run: full splits, k-NN at two k, linear probe,
and the baselines (raw pixels, random init, supervised) measured the same way, cached.

In-training k-NN monitoring may use subsets; this final table never does: the k-NN
bank and the probe's training set are the full train split, the queries the full
test split, whatever ``data.subset`` / ``data.test_subset`` the run trained with.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from nocollapse.data import load_dataset
from nocollapse.evaluate import (
    BaselineSetup,
    Protocol,
    encoder_in_eval_mode,
    evaluate_features,
    extract_features,
    knn_key,
    measure_baselines,
)
from nocollapse.methods import Learner
from nocollapse.train.config import TrainConfig
from nocollapse.train.setup import RunData


def protocol_for(config: TrainConfig, linear: bool = True) -> Protocol:
    """k-NN at the run's ``eval.knn_k`` and at 20, temperature ``eval.knn_t``, linear probe."""
    ks = tuple(dict.fromkeys((config.eval.knn_k, 20)))
    return Protocol(knn_k=ks, knn_t=config.eval.knn_t, probe_epochs=config.eval.probe_epochs,
                    linear=linear)


def full_splits(config: TrainConfig, data: RunData) -> RunData | None:
    """The run's data without its subsets; None when there is no labelled test split."""
    if data.test is None or int(data.test.labels.min()) < 0:
        return None
    if config.data.subset is None and config.data.test_subset is None:
        return data
    options = {"size": config.data.image_size} if config.data.name == "folder" else {}
    train = load_dataset(config.data.name, config.data.data_dir, "train", **options)
    test = load_dataset(config.data.name, config.data.data_dir, "test", **options)
    return dataclasses.replace(data, train=train, test=test)


def stop_note(stopped: str, step: int, planned: int) -> str | None:
    """What a reader must know beside the figures of a run that did not finish its plan."""
    if stopped == "time_budget":
        return f"stopped by time budget at step {step} of {planned}"
    if stopped == "max_steps" and step < planned:
        return f"stopped by max_steps at step {step} of {planned}"
    return None


def final_evaluation(config: TrainConfig, learner: Learner, data: RunData,
                     planned_steps: int, device: torch.device | str = "cpu",
                     linear: bool = True) -> dict[str, Any] | None:
    """The trained encoder and the configured baselines under :func:`protocol_for`.

    Returns ``{"protocol", "train_images", "test_images", "trained", "baselines"}``
    (accuracies in [0, 1]) or None without a labelled test split. The supervised
    bound trains for ``eval.supervised_steps`` steps (default: ``planned_steps``).
    """
    splits = full_splits(config, data)
    if splits is None or splits.test is None:
        return None
    protocol = protocol_for(config, linear)
    with encoder_in_eval_mode(learner):
        train_x = extract_features(learner.encode, splits.train.images, preset=splits.preset,
                                   device=device)
        test_x = extract_features(learner.encode, splits.test.images, preset=splits.preset,
                                  device=device)
    trained = evaluate_features(train_x, splits.train.labels, test_x, splits.test.labels,
                                protocol, seed=config.seed)
    baselines: dict[str, dict[str, Any]] = {}
    if config.eval.baselines:
        # the learner's own backbone name; a custom learner without one is measured against
        # the configured learner.backbone (not silently against a fixed default)
        backbone = getattr(getattr(learner, "config", None), "backbone",
                           config.learner.backbone)
        setup = BaselineSetup(backbone=backbone, seed=config.seed,
                              supervised_steps=config.eval.supervised_steps or planned_steps,
                              supervised_batch_size=config.data.batch_size,
                              fixed_threads=config.device.threads is not None)
        baselines = measure_baselines(splits.train, splits.test, setup, protocol,
                                      config.eval.baselines, device=device)
    return {"protocol": protocol.key(), "train_images": len(splits.train),
            "test_images": len(splits.test), "trained": trained, "baselines": baselines,
            "headline": knn_key(protocol.knn_k[0])}
