"""A small ConvNet for CPU runs on 8x8 to 32x32 images."""

from __future__ import annotations

import torch
from torch import nn


def _conv_block(c_in: int, c_out: int, pool: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                               nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class SmallConvNet(nn.Module):
    """Four 3x3 conv-BN-ReLU blocks, pooling after the first ones, then global average pool.

    Pools only while the feature map is at least 4 pixels wide, so 8x8 digits and
    32x32 colour images use the same network. Output: ``(B, width * 4)``.
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, width: int = 32):
        super().__init__()
        channels = [in_channels, width, width * 2, width * 4, width * 4]
        blocks, size = [], image_size
        for i in range(4):
            pool = i < 3 and size >= 8
            blocks.append(_conv_block(channels[i], channels[i + 1], pool))
            size = size // 2 if pool else size
        self.features = nn.Sequential(*blocks)
        self.out_dim = channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1)
