"""The standard evaluation at the end of a run: full splits, k-NN at two k, linear probe,
and the baselines (raw pixels, random init, supervised) measured the same way, cached.

In-training k-NN monitoring may use subsets; this final table does not: the k-NN
bank and the probe's training set are the full train split, the queries the full
test split, whatever ``data.subset`` / ``data.test_subset`` the run trained with.
``eval.protocol=fast`` (sweeps, short runs) is the one exception, and says so in its
protocol record: the bank is a fixed subsample of ``FAST_BANK`` train images (the same
for every run), the queries still the full test split.
"""

from __future__ import annotations

import dataclasses

import torch

from nocollapse.data import ImageDataset
from nocollapse.evaluate import (
    BASELINES,
    FAST_BANK,
    QUIET,
    BaselineSetup,
    EvalProgress,
    Protocol,
    cached_baseline,
    encoder_in_eval_mode,
    evaluate_features,
    extract_features,
    fast_bank_indices,
    knn_key,
    measure_baselines,
)
from nocollapse.methods import Learner
from nocollapse.runio.records import Evaluation
from nocollapse.train.config import TrainConfig
from nocollapse.train.setup import RunData, dataset_options, load_split


def protocol_for(config: TrainConfig, linear: bool = True) -> Protocol:
    """k-NN at the run's ``eval.knn_k`` and at 20, temperature ``eval.knn_t``, linear probe."""
    ks = tuple(dict.fromkeys((config.eval.knn_k, 20)))
    return Protocol(knn_k=ks, knn_t=config.eval.knn_t, probe_epochs=config.eval.probe_epochs,
                    linear=linear, bank=FAST_BANK if config.eval.protocol == "fast" else None)


def full_splits(config: TrainConfig, data: RunData) -> RunData | None:
    """The run's data without its subsets; None when there is no labelled test split."""
    if data.test is None or int(data.test.labels.min()) < 0:
        return None
    if config.data.subset is None and config.data.test_subset is None:
        return data
    options = dataset_options(config)
    train = load_split(config.data.name, config.data.data_dir, "train", **options)
    test = load_split(config.data.name, config.data.data_dir, "test", **options)
    return dataclasses.replace(data, train=train, test=test)


def evaluation_splits(config: TrainConfig, data: RunData) -> RunData | None:
    """The splits of ``eval.protocol``: :func:`full_splits`, with the fast protocol's fixed
    bank of ``FAST_BANK`` train images in place of the train split."""
    splits = full_splits(config, data)
    if splits is None or config.eval.protocol != "fast":
        return splits
    keep = fast_bank_indices(len(splits.train), FAST_BANK)
    train = splits.train
    bank = ImageDataset(train.name, train.images[keep], train.labels[keep], train.classes)
    return dataclasses.replace(splits, train=bank)


def final_evaluation(config: TrainConfig, learner: Learner, data: RunData,
                     planned_steps: int, device: torch.device | str = "cpu",
                     linear: bool = True, *, progress: EvalProgress = QUIET,
                     later_command: str | None = None) -> Evaluation | None:
    """The trained encoder and the configured baselines under :func:`protocol_for`.

    The baselines' backbone is the configured ``learner.backbone``: the learner was built
    from that config (a ``learner_factory`` gets it), whatever its class.

    Returns ``{"protocol", "train_images", "test_images", "trained", "baselines",
    "headline"}`` (accuracies in [0, 1]) or None without a labelled test split. The
    supervised bound trains for ``eval.supervised_steps`` steps (default: ``planned_steps``).
    With ``later_command`` (the command that measures every baseline) and a non-empty
    ``eval.baselines``, a baseline left out of ``eval.baselines`` is read from the cache
    when it is there, and otherwise listed under ``"pending_baselines"`` with that command,
    so the table says how to get its row instead of dropping it silently.
    """
    if not config.eval.final:
        return None
    splits = evaluation_splits(config, data)
    if splits is None or splits.test is None:
        return None
    protocol = protocol_for(config, linear)
    bf16 = config.device.precision == "bf16-mixed"  # the encoder evaluated as it trained
    with encoder_in_eval_mode(learner):
        train_x = extract_features(learner.encode, splits.train.images, preset=splits.preset,
                                   device=device, progress=progress,
                                   name="trained encoder: train features", bf16=bf16)
        test_x = extract_features(learner.encode, splits.test.images, preset=splits.preset,
                                  device=device, progress=progress,
                                  name="trained encoder: test features", bf16=bf16)
    trained = evaluate_features(train_x, splits.train.labels, test_x, splits.test.labels,
                                protocol, seed=config.seed, progress=progress,
                                label="trained encoder: ", overwrite=True)
    del train_x, test_x  # the baselines' features take their place
    baselines: dict[str, dict[str, float]] = {}
    pending: dict[str, str] = {}
    if config.eval.baselines:
        setup = BaselineSetup(backbone=config.learner.backbone, seed=config.seed,
                              supervised_steps=config.eval.supervised_steps or planned_steps,
                              supervised_batch_size=config.data.batch_size,
                              fixed_threads=config.device.threads is not None)
        baselines = measure_baselines(splits.train, splits.test, setup, protocol,
                                      config.eval.baselines, device=device, progress=progress)
        for name in BASELINES if later_command else ():
            if name in baselines:
                continue
            found = cached_baseline(name, splits.train, splits.test, setup, protocol)
            if found is not None:
                baselines[name] = found
            else:
                pending[name] = later_command or ""
        baselines = {name: baselines[name] for name in BASELINES if name in baselines}
    result: Evaluation = {"protocol": protocol.key(), "train_images": len(splits.train),
              "test_images": len(splits.test), "trained": trained, "baselines": baselines,
              "headline": knn_key(protocol.knn_k[0])}
    if pending:
        result["pending_baselines"] = pending
    return result
