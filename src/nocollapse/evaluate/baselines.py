"""Baselines measured by the standard protocol: raw pixels, random init, supervised.

Each is cached (:mod:`nocollapse.evaluate.cache`) per data set (name and a hash of
the images), backbone, protocol and seed -- and, for the supervised bound, its
training budget -- so a second run with the same data costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from nocollapse.data import ImageDataset, make_augment, preset_for_images
from nocollapse.errors import check_choice
from nocollapse.evaluate.cache import cached, read_cached, tensor_fingerprint
from nocollapse.evaluate.features import encoder_in_eval_mode, extract_features
from nocollapse.evaluate.progress import QUIET, EvalProgress
from nocollapse.evaluate.protocol import Protocol, evaluate_features
from nocollapse.evaluate.supervised import train_supervised
from nocollapse.models import build_backbone

# How the linear probe computes, part of each key: figures of the earlier float64 probe are
# recomputed rather than mixed with float32 ones in one table.
PROBE_NUMERICS = "lbfgs-float32"
# The supervised bound sees milder crops than the self-supervised views: labels need no
# invariance to be learned, only regularisation.
SUPERVISED_CROP_SCALE = (0.5, 1.0)


@dataclass(frozen=True)
class BaselineSetup:
    """The backbone, seed and supervised budget the baselines are measured with."""

    backbone: str = "small_convnet"
    seed: int = 0
    supervised_steps: int = 2000
    supervised_batch_size: int = 128
    supervised_lr: float = 0.1
    # the run fixed its CPU thread count (device.threads): the supervised loop keeps it
    fixed_threads: bool = False


FeaturePair = tuple[torch.Tensor, torch.Tensor]  # train and test features, (N, D) each


@dataclass(frozen=True)
class BaselineEntry:
    """A baseline: how it makes features of the two splits, what of the setup decides them.

    ``features(train, test, setup, device, progress) -> (train_x, test_x)``;
    ``key(setup)``: the setup's fields its figures depend on (part of its cache key).
    """

    label: str
    features: Callable[[ImageDataset, ImageDataset, BaselineSetup, torch.device | str,
                        EvalProgress], FeaturePair]
    key: Callable[[BaselineSetup], dict[str, object]]


def _raw_pixels(train: ImageDataset, test: ImageDataset, setup: BaselineSetup,
                device: torch.device | str, progress: EvalProgress) -> FeaturePair:
    """Pixel values in [0, 1], as the field reports raw pixels."""
    return (train.images.flatten(1).float().div_(255),
            test.images.flatten(1).float().div_(255))


def _random_init(train: ImageDataset, test: ImageDataset, setup: BaselineSetup,
                 device: torch.device | str, progress: EvalProgress) -> FeaturePair:
    """The backbone's initial weights of a run with this seed."""
    return _backbone_features("random_init", train, test, setup, device, progress,
                              supervised=False)


def _supervised(train: ImageDataset, test: ImageDataset, setup: BaselineSetup,
                device: torch.device | str, progress: EvalProgress) -> FeaturePair:
    """The backbone trained on the labels (the upper bound)."""
    return _backbone_features("supervised", train, test, setup, device, progress,
                              supervised=True)


def _backbone_key(setup: BaselineSetup) -> dict[str, object]:
    return {"backbone": setup.backbone}


def _supervised_key(setup: BaselineSetup) -> dict[str, object]:
    return {"backbone": setup.backbone,
            "budget": [setup.supervised_steps, setup.supervised_batch_size,
                       setup.supervised_lr, list(SUPERVISED_CROP_SCALE)]}


BASELINES: dict[str, BaselineEntry] = {
    "raw_pixels": BaselineEntry("raw pixels", _raw_pixels, lambda setup: {}),
    "random_init": BaselineEntry("random init", _random_init, _backbone_key),
    "supervised": BaselineEntry("supervised", _supervised, _supervised_key),
}


def measure_baselines(train: ImageDataset, test: ImageDataset, setup: BaselineSetup,
                      protocol: Protocol | None = None, names: Sequence[str] | None = None, *,
                      device: torch.device | str = "cpu",
                      progress: EvalProgress = QUIET) -> dict[str, dict[str, float]]:
    """``{name: {"knn_k200": .., ..., "cached": bool}}`` for each baseline in ``names`` (all).

    ``progress`` shows each phase of a baseline that is not in the cache.
    """
    protocol = protocol or Protocol()
    names = tuple(BASELINES) if names is None else names
    for name in names:
        check_choice("baseline", name, tuple(BASELINES))
    results: dict[str, dict[str, float]] = {}
    for name in names:
        def compute(name: str = name) -> dict[str, float]:
            train_x, test_x = BASELINES[name].features(train, test, setup, device, progress)
            return evaluate_features(train_x, train.labels, test_x, test.labels, protocol,
                                     seed=setup.seed, progress=progress,
                                     label=f"{BASELINES[name].label}: ", overwrite=True)

        result, from_cache = cached("baselines", _key(name, train, test, setup, protocol),
                                    compute)
        results[name] = {**result, "cached": from_cache}
    return results


def cached_baseline(name: str, train: ImageDataset, test: ImageDataset, setup: BaselineSetup,
                    protocol: Protocol | None = None) -> dict[str, float] | None:
    """The baseline's figures (with ``"cached": True``) when the cache holds them, else None:
    nothing is computed."""
    check_choice("baseline", name, tuple(BASELINES))
    found = read_cached("baselines", _key(name, train, test, setup, protocol or Protocol()))
    return None if found is None else {**found, "cached": True}


def _key(name: str, train: ImageDataset, test: ImageDataset, setup: BaselineSetup,
         protocol: Protocol) -> dict[str, object]:
    """Everything that decides a baseline's figures."""
    key: dict[str, object] = {
        "train": [train.name, tensor_fingerprint(train.images), tensor_fingerprint(train.labels)],
        "test": [test.name, tensor_fingerprint(test.images), tensor_fingerprint(test.labels)],
        "protocol": protocol.key(), "probe": PROBE_NUMERICS, "seed": setup.seed,
        "baseline": name}
    return {**key, **BASELINES[name].key(setup)}


def _backbone_features(name: str, train: ImageDataset, test: ImageDataset,
                       setup: BaselineSetup, device: torch.device | str, progress: EvalProgress,
                       supervised: bool) -> FeaturePair:
    preset = preset_for_images(train.images)
    c, h, _ = train.image_shape
    with torch.random.fork_rng():
        torch.manual_seed(setup.seed)  # the initial weights a run with this seed starts from
        backbone, feat_dim = build_backbone(setup.backbone, c, h)
    backbone.to(device)
    if supervised:
        augment = make_augment(preset, crop_scale=SUPERVISED_CROP_SCALE).to(device)
        train_supervised(backbone, feat_dim, train.images, train.labels, augment,
                         steps=setup.supervised_steps, batch_size=setup.supervised_batch_size,
                         lr=setup.supervised_lr, seed=setup.seed, device=device,
                         fixed_threads=setup.fixed_threads, progress=progress)
    label = BASELINES[name].label
    with encoder_in_eval_mode(backbone):
        return (extract_features(backbone, train.images, preset=preset, device=device,
                                 progress=progress, name=f"{label}: train features"),
                extract_features(backbone, test.images, preset=preset, device=device,
                                 progress=progress, name=f"{label}: test features"))
