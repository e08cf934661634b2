"""A small ConvNet for CPU runs on 8x8 to 32x32 images."""

from __future__ import annotations

import torch
from torch import nn


def _conv_block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, padding=1, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class SmallConvNet(nn.Module):
    """Four 3x3 conv-BN-ReLU blocks, then global average pooling: ``(B, C, H, W) -> (B, 4w)``.

    The first three blocks halve the map with a stride-2 convolution while it is
    wider than 4 pixels (28 -> 14 -> 7 -> 4, 32 -> 16 -> 8 -> 4, 8 -> 4), so 8x8
    digits, 28x28 and 32x32 images share the network and end on a 4x4 map.
    Strided convolutions instead of conv + max-pool, the third downsampling and
    channels-last memory, because on CPU the large activations dominate the step
    time: a whole Siamese step at 28x28, batch 256, 2 threads went from about
    1 s (conv + max-pool, last two blocks at 7x7) to about 0.4 s
    (``benchmarks/bench_models.py``; noisy on a shared machine).
    """

    def __init__(self, in_channels: int = 1, image_size: int = 28, width: int = 32):
        super().__init__()
        channels = [in_channels, width, width * 2, width * 4, width * 4]
        blocks, size = [], image_size
        for i in range(4):
            stride = 2 if i < 3 and size > 4 else 1
            blocks.append(_conv_block(channels[i], channels[i + 1], stride))
            size = (size + 1) // 2 if stride == 2 else size
        # torch's stubs lack Module.to's memory_format keyword, which it accepts
        self.features = nn.Sequential(*blocks).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.out_dim = channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1)
