"""Backbone training-step time on CPU: forward + backward + SGD step at batch 256.

Measures each backbone on the image shapes it is used with (28x28x1 Fashion-MNIST,
8x8x1 digits, 32x32x3 CIFAR), with a 2-layer projector on top so the step matches
one view of a Siamese step. The issue's target: SmallConvNet < 0.5 s per step at
28x28, batch 256, on 2 cores. Run: ``.venv/bin/python benchmarks/bench_models.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import median_seconds, print_table

from nocollapse.models import ProjectorMLP, build_backbone

CASES = [("small_convnet", 1, 28), ("small_convnet", 1, 8), ("small_convnet", 3, 32),
         ("small_resnet", 1, 28), ("small_resnet", 3, 32)]


def step_seconds(name: str, channels: int, size: int, batch: int, repeats: int) -> float:
    backbone, dim = build_backbone(name, channels, size)
    model = nn.Sequential(backbone, ProjectorMLP(dim, 512, 128))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, channels, size, size)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        model(x).pow(2).mean().backward()
        opt.step()

    return median_seconds(step, repeats=repeats, warmup=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, channels, size in CASES:
        seconds = step_seconds(name, channels, size, args.batch, args.repeats)
        params = sum(p.numel() for p in build_backbone(name, channels, size)[0].parameters())
        rows.append((name, f"{size}x{size}x{channels}", f"{params / 1e3:.0f}k",
                     f"{seconds:.3f}", f"{args.batch / seconds:.0f}"))
    print_table(f"Training step (one view, batch {args.batch}, fwd+bwd+SGD)",
                ["backbone", "input", "params", "s/step", "images/s"], rows)


if __name__ == "__main__":
    main()
