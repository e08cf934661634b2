"""ResNets in plain torch (torchvision does not work with the CPU torch build here).

``small_image_stem=True`` is the CIFAR/STL variant used by SimSiam, BYOL and
DirectPred at 32x32 and 96x96: a 3x3 stride-1 first convolution and no max-pool.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, c_mid: int, stride: int = 1):
        super().__init__()
        c_out = c_mid * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_mid, 1, bias=False), nn.BatchNorm2d(c_mid), nn.ReLU(inplace=True),
            nn.Conv2d(c_mid, c_mid, 3, stride, 1, bias=False), nn.BatchNorm2d(c_mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.shortcut = _shortcut(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


class ResNet(nn.Module):
    """A ResNet trunk ending in global average pooling: ``(B, C, H, W) -> (B, out_dim)``."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], layers: list[int],
                 in_channels: int = 3, small_image_stem: bool = True, width: int = 64,
                 first_stage_stride: int = 1):
        super().__init__()
        if small_image_stem:
            stem: list[nn.Module] = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)]
        else:
            stem = [nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)]
        stem += [nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        if not small_image_stem:
            stem.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        stages, c_in = [], width
        for i, blocks in enumerate(layers):
            c_mid = width * 2**i
            for j in range(blocks):
                stride = (first_stage_stride if i == 0 else 2) if j == 0 else 1
                stages.append(block(c_in, c_mid, stride))
                c_in = c_mid * block.expansion
        self.stages = nn.Sequential(*stages)
        self.out_dim = c_in
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stages(self.stem(x))
        return torch.flatten(nn.functional.adaptive_avg_pool2d(out, 1), 1)


def resnet18(in_channels: int = 3, small_image_stem: bool = True) -> ResNet:
    return ResNet(BasicBlock, [2, 2, 2, 2], in_channels, small_image_stem)


def resnet50(in_channels: int = 3, small_image_stem: bool = True) -> ResNet:
    return ResNet(Bottleneck, [3, 4, 6, 3], in_channels, small_image_stem)


def small_resnet(in_channels: int = 3, small_image_stem: bool = True) -> ResNet:
    """Three stages of one BasicBlock at width 32, each halving the map: a ResNet for CPU.

    The first stage downsamples too (28 -> 14 -> 7 -> 4) because full-resolution
    residual blocks made a Siamese step several times slower than SmallConvNet's.
    """
    return ResNet(BasicBlock, [1, 1, 1], in_channels, small_image_stem, width=32,
                  first_stage_stride=2)
