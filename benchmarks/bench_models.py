"""Backbone training-step time on CPU at batch 256.

Measures each backbone on the image shapes it is used with (28x28x1 Fashion-MNIST,
8x8x1 digits, 32x32x3 CIFAR) with a 2-layer projector on top: "one view" is
forward + backward + SGD step of one batch; "Siamese step" is a whole BYOL-style
step (both views through online network and MLP predictor with backward, both
through a target copy without gradient, SGD step). The issue's target:
SmallConvNet < 0.5 s per step at 28x28, batch 256, on 2 cores. The load average
is printed because the figures scale with it on a shared machine.
Run: ``.venv/bin/python benchmarks/bench_models.py``.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import best_seconds, print_table

from nocollapse.losses import cosine_loss, symmetrised
from nocollapse.models import MLPPredictor, ProjectorMLP, build_backbone

CASES = [("small_convnet", 1, 28), ("small_convnet", 1, 8), ("small_convnet", 3, 32),
         ("small_resnet", 1, 28), ("small_resnet", 3, 32)]



def step_seconds(name: str, channels: int, size: int, batch: int, repeats: int
                 ) -> tuple[float, float]:
    """Best seconds of (one view fwd+bwd+step, whole Siamese step)."""
    backbone, dim = build_backbone(name, channels, size)
    online = nn.Sequential(backbone, ProjectorMLP(dim, 512, 128))
    predictor, target = MLPPredictor(128, 512), copy.deepcopy(online)
    opt = torch.optim.SGD([*online.parameters(), *predictor.parameters()], lr=0.01, momentum=0.9)
    x1, x2 = torch.randn(batch, channels, size, size), torch.randn(batch, channels, size, size)

    def one_view() -> None:
        opt.zero_grad(set_to_none=True)
        online(x1).pow(2).mean().backward()
        opt.step()

    def siamese() -> None:
        opt.zero_grad(set_to_none=True)
        p1, p2 = predictor(online(x1)), predictor(online(x2))
        with torch.no_grad():
            t1, t2 = target(x1), target(x2)
        symmetrised(cosine_loss, p1, t2, p2, t1).backward()
        opt.step()

    return best_seconds(one_view, repeats), best_seconds(siamese, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    load_before = os.getloadavg()[0]
    for name, channels, size in CASES:
        view, step = step_seconds(name, channels, size, args.batch, args.repeats)
        params = sum(p.numel() for p in build_backbone(name, channels, size)[0].parameters())
        rows.append((name, f"{size}x{size}x{channels}", f"{params / 1e3:.0f}k",
                     f"{view:.3f}", f"{step:.3f}", f"{args.batch / step:.0f}"))
    print_table(f"Training step, batch {args.batch}, {args.threads} threads, load average "
                f"{load_before:.1f} before / {os.getloadavg()[0]:.1f} after",
                ["backbone", "input", "params", "one view s (best)", "Siamese step s (best)",
                 "source images/s"], rows)


if __name__ == "__main__":
    main()
