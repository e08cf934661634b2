"""Per-dataset augmentation presets and the matching evaluation-time transform.

A preset key names the image geometry: ``28x1`` (Fashion-MNIST, MNIST), ``32x3``
(CIFAR, SimSiam's CIFAR recipe), ``96x3`` (STL-10, BYOL's recipe with blur and
solarize at the average of its two views' probabilities) and ``8x1`` (digits).
"""

from __future__ import annotations

from typing import Any

import torch

from nocollapse.data.augment import BatchAugment
from nocollapse.data.registry import DATASETS
from nocollapse.errors import ConfigError, check_choice

_NO_COLOUR: dict[str, Any] = {"jitter": (0.0, 0.0, 0.0, 0.0), "jitter_p": 0.0, "gray_p": 0.0}
PRESETS: dict[str, dict[str, Any]] = {
    # Fashion-MNIST training-set statistics; MNIST's differ a little, which is harmless.
    "28x1": {"size": 28, "channels": 1, **_NO_COLOUR, "mean": (0.2860,), "std": (0.3530,)},
    "32x3": {"size": 32, "channels": 3, "mean": (0.4914, 0.4822, 0.4465),
             "std": (0.2470, 0.2435, 0.2616)},
    # ImageNet statistics, as BYOL and solo-learn use for STL-10.
    "96x3": {"size": 96, "channels": 3, "crop_scale": (0.08, 1.0), "blur_p": 0.5,
             "solarize_p": 0.1, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)},
    # sklearn digits after scaling to 0..255. No flip: mirrored digits change meaning.
    "8x1": {"size": 8, "channels": 1, **_NO_COLOUR, "crop_scale": (0.5, 1.0), "flip_p": 0.0,
            "mean": (0.3053,), "std": (0.3759,)},
}

def augmentation_preset(name: str) -> str:
    """The preset key for data set ``name``; ``default`` maps to Fashion-MNIST's ``28x1``.

    When the default falls back to digits, use :func:`preset_for_images` on the
    loaded images instead, which reads the geometry.
    """
    return DATASETS[check_choice("data set", name, tuple(DATASETS))].preset


def preset_for_images(images: torch.Tensor) -> str:
    """The preset key matching uint8 images (N, C, H, W) by their size and channels."""
    c, h, w = (int(v) for v in images.shape[1:])
    key = f"{h}x{c}"
    if h != w or key not in PRESETS:
        raise ConfigError(f"no augmentation preset for {c}x{h}x{w} images; presets: "
                          f"{', '.join(PRESETS)}; build a BatchAugment(size, channels) directly")
    return key


def make_augment(preset: str, **overrides: Any) -> BatchAugment:
    """A :class:`BatchAugment` for ``preset`` with any keyword overridden."""
    options = {**PRESETS[check_choice("augmentation preset", preset, tuple(PRESETS))],
               **overrides}
    return BatchAugment(options.pop("size"), options.pop("channels"), **options)


def normalize(images_uint8: torch.Tensor, preset: str) -> torch.Tensor:
    """Evaluation-time transform: uint8 (B, C, H, W) -> float32, same normalisation, no crop."""
    options = PRESETS[check_choice("augmentation preset", preset, tuple(PRESETS))]
    if images_uint8.dim() != 4 or images_uint8.shape[1] != options["channels"]:
        raise ConfigError(f"preset {preset!r} expects (B, {options['channels']}, H, W) images, "
                          f"got {tuple(images_uint8.shape)}")
    device = images_uint8.device
    mean = torch.tensor(options["mean"], device=device).view(1, -1, 1, 1)
    std = torch.tensor(options["std"], device=device).view(1, -1, 1, 1)
    return (images_uint8.to(torch.float32) / 255 - mean) / std
