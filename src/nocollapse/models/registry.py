"""``build_backbone(name, in_channels, image_size)``: every backbone by name."""

from __future__ import annotations

from torch import nn

from nocollapse.errors import check_choice, check_positive
from nocollapse.models.convnet import SmallConvNet
from nocollapse.models.resnet import ResNet, resnet18, resnet50, small_resnet

BACKBONES = ("small_convnet", "small_resnet", "resnet18", "resnet50")


def build_backbone(name: str, in_channels: int, image_size: int) -> tuple[nn.Module, int]:
    """The backbone module (``(B, C, H, W) -> (B, feat_dim)``) and its ``feat_dim``.

    ResNets take the small-image stem (3x3 stride-1 conv, no max-pool) up to 96x96
    and the ImageNet stem above.
    """
    check_choice("backbone", name, BACKBONES)
    check_positive("in_channels", in_channels)
    check_positive("image_size", image_size)
    if name == "small_convnet":
        module: SmallConvNet | ResNet = SmallConvNet(in_channels, image_size)
    else:
        builder = {"small_resnet": small_resnet, "resnet18": resnet18, "resnet50": resnet50}[name]
        module = builder(in_channels, small_image_stem=image_size <= 96)
    return module, int(module.out_dim)
