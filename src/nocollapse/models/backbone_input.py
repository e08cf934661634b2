"""The input contract of a loaded backbone, on the module itself.

:func:`describe_input` puts what an exported backbone expects on the ``nn.Module``
that :func:`~nocollapse.models.export.load_backbone` returns: ``input_size``,
``in_channels``, ``mean`` and ``std`` (per channel), ``pixels`` (how the data set's
files became the uint8 values the run trained on, e.g. the digits' ``0..16`` scaled by
``255 / 16``), ``out_dim`` and the whole JSON ``description``; and a forward pre-hook
that refuses an input of another shape by name (:class:`BackboneInputError`) instead
of returning features of a picture the network never saw.

:class:`RawImages` wraps it for raw images: ``uint8`` tensors ``(B, C, H, W)`` (0..255,
as the data set's files give them after ``pixels``) in, the run's features out (it
divides by 255 and normalises with the description's mean and std).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from nocollapse.errors import NocollapseError


class BackboneInputError(NocollapseError, ValueError):
    """Input of a shape or type the exported backbone was not trained on."""


def describe_input(backbone: nn.Module, description: Mapping[str, Any]) -> nn.Module:
    """Set the input contract's attributes on ``backbone`` and refuse other shapes."""
    found = description["input"]
    normalization = description.get("normalization") or {}
    attributes = {
        "input_size": int(found["size"]), "in_channels": int(found["channels"]),
        "mean": tuple(float(v) for v in normalization.get("mean", ())),
        "std": tuple(float(v) for v in normalization.get("std", ())),
        "pixels": str(found.get("source_pixels", found.get("pixels", ""))),
        "description": dict(description),
    }
    for name, value in attributes.items():
        object.__setattr__(backbone, name, value)  # plain attributes, not parameters
    backbone.register_forward_pre_hook(_check_input)
    return backbone


def _check_input(module: nn.Module, inputs: tuple[object, ...]) -> None:
    x = inputs[0] if inputs else None
    channels, size = getattr(module, "in_channels"), getattr(module, "input_size")  # noqa: B009
    expected = f"(batch, {channels}, {size}, {size})"
    if not isinstance(x, torch.Tensor):
        raise BackboneInputError(f"the backbone takes a float tensor {expected}; got a "
                                 f"{type(x).__name__}")
    if x.dim() != 4 or tuple(x.shape[1:]) != (channels, size, size):
        raise BackboneInputError(
            f"the backbone was trained on {expected} images; got shape {tuple(x.shape)}: "
            f"resize to {size}x{size} with {channels} channel(s) first")
    if not x.is_floating_point():
        raise BackboneInputError(
            f"the backbone takes normalised float images; got {x.dtype}: wrap it in "
            "nocollapse.models.RawImages (or load_backbone(..., raw=True)) for uint8 images")


class RawImages(nn.Module):
    """``uint8`` images ``(B, C, H, W)`` -> ``x / 255``, normalised -> the backbone.

    Float input is taken as already on the 0..255 scale. The attributes of the wrapped
    backbone (``input_size``, ``mean``, ``pixels``, ...) are read through ``backbone``.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        mean, std = getattr(backbone, "mean", ()), getattr(backbone, "std", ())
        channels = int(getattr(backbone, "in_channels", 0))
        if not mean or len(mean) != channels or len(std) != channels:
            raise BackboneInputError("RawImages needs a backbone from load_backbone (its mean "
                                     "and std per channel)")
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not isinstance(images, torch.Tensor):
            raise BackboneInputError(f"RawImages takes a uint8 tensor; got a "
                                     f"{type(images).__name__}")
        x = images.float() / 255.0
        features: torch.Tensor = self.backbone((x - self.mean) / self.std)
        return features
