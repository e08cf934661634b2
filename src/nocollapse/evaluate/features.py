"""Frozen features of a data set, from an encoder, in batches and without gradients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from nocollapse.data import normalize, preset_for_images
from nocollapse.evaluate.knn import knn_accuracy
from nocollapse.evaluate.progress import QUIET, EvalProgress


@torch.no_grad()
def extract_features(encode: Callable[[torch.Tensor], torch.Tensor], images_uint8: torch.Tensor,
                     *, preset: str | None = None, batch_size: int = 512,
                     device: torch.device | str | None = None,
                     progress: EvalProgress = QUIET, name: str = "features",
                     bf16: bool = False) -> torch.Tensor:
    """Features (N, D) float32 on the CPU of uint8 images (N, C, H, W).

    Images are normalised as in evaluation (no augmentation) with ``preset``
    (read from the image geometry when None), moved to ``device`` one batch at a
    time, and passed through ``encode`` (for example ``learner.encode``). The
    caller puts the model in eval mode; this function does not change it.
    Batches are written into one preallocated tensor (a list of batches joined at the
    end would hold the features twice at the peak); ``progress`` shows the phase.
    ``bf16``: the forward under bfloat16 autocast (a run trained in ``bf16-mixed``
    evaluates as it trained; the features are stored in float32).
    """
    preset = preset or preset_for_images(images_uint8)
    device_type = torch.device(device).type if device is not None else "cpu"
    total = images_uint8.shape[0]
    features: torch.Tensor | None = None
    with progress.phase(name, total, "images") as phase:
        for start in range(0, total, batch_size):
            batch = images_uint8[start:start + batch_size]
            if device is not None:
                batch = batch.to(device, non_blocking=True)
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
                out = encode(normalize(batch, preset)).flatten(1)
            if features is None:
                features = torch.empty(total, out.shape[1], dtype=torch.float32)
            features[start:start + len(batch)] = out
            phase.advance(len(batch))
    return features if features is not None else torch.empty(0, 0)


class Switchable(Protocol):
    """A model with a training/evaluation switch (any ``nn.Module``, or a ``Learner``)."""

    training: bool

    def train(self, mode: bool = True) -> object: ...

    def eval(self) -> object: ...


def encoder_in_eval_mode(module: Switchable) -> _EvalMode:
    """Context manager: ``module.eval()`` inside, the previous mode restored after."""
    return _EvalMode(module)


class _EvalMode:
    def __init__(self, module: Switchable):
        self.module = module
        self.was_training = module.training

    def __enter__(self) -> Switchable:
        self.module.eval()
        return self.module

    def __exit__(self, *exc: object) -> None:
        self.module.train(self.was_training)


def encoder_knn_accuracy(model: Switchable, encode: Callable[[torch.Tensor], torch.Tensor],
                         train_images: torch.Tensor, train_labels: torch.Tensor,
                         test_images: torch.Tensor, test_labels: torch.Tensor, *,
                         k: int = 200, t: float = 0.1, batch_size: int = 512,
                         device: torch.device | str | None = None, bf16: bool = False) -> float:
    """k-NN accuracy in [0, 1] of ``encode``'s features: train split as bank, test as queries.

    ``model`` (the module owning ``encode``) is put in eval mode for the pass and
    restored after, so BatchNorm uses running statistics and training statistics
    such as the predictor's correlation are left untouched. ``bf16``: as
    :func:`extract_features`'s.
    """
    preset = preset_for_images(train_images)
    with encoder_in_eval_mode(model):
        bank = extract_features(encode, train_images, preset=preset, batch_size=batch_size,
                                device=device, bf16=bf16)
        queries = extract_features(encode, test_images, preset=preset, batch_size=batch_size,
                                   device=device, bf16=bf16)
    return knn_accuracy(bank, train_labels, queries, test_labels, k=k, t=t)
