"""The model step for a backbone passed as an ``nn.Module``: before/after issue 11.

A whole training step (both views forward, backward, SGD step, EMA target update) of
``SiameseLearner`` on fixed inputs, batch 256 (512 images through the network; the
unit below is source images, 256 a step). Backbones: the issue's 4-layer ConvNet
(3x3 conv 32-64-128-256, BatchNorm, ReLU, 2x2 max-pool, global average pool) passed
as a module, at 32x32x3; and the default ``small_convnet`` at 28x28x1. Same heads.

* before: NCHW (contiguous) backbone and torch's default SGD (per-tensor loop on CPU);
* after: what ``nocollapse train`` does now: channels-last backbone, fused SGD;
* after+compile: the same under ``torch.compile`` (compile time reported apart);
* after+bf16: the same under CPU autocast to bfloat16 (``device.precision=bf16-mixed``):
  another precision, so not the same computation as the others;
* lightly: the peer's step as its SimSiam / BYOL examples write it, on the same
  backbone module (NCHW, as a user passes it) with the same head widths: lightly's
  projection and prediction heads, ``NegativeCosineSimilarity``, torch's SGD and
  ``update_momentum`` for BYOL's target. Needs ``lightly`` importable (``pip install
  --no-deps lightly``); its model code does not use torchvision, which
  ``lightly_peer`` stubs so that lightly imports without it.

Variants are interleaved round by round on a busy machine; the ratio is the median
over rounds of before/after within a round.
Run: ``.venv/bin/python benchmarks/bench_backbones.py [--rounds 5] [--compile] [--bf16]
[--lightly]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import print_table

from nocollapse.methods import SiameseLearner, learner_config
from nocollapse.models.convnet import SmallConvNet
from nocollapse.train.setup import fast_sgd


class ConvNet4(nn.Module):
    """conv 3x3 32-64-128-256, each with BatchNorm, ReLU, 2x2 max-pool; global average pool."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        layers, c = [], in_channels
        for width in (32, 64, 128, 256):
            layers += [nn.Conv2d(c, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def make_step(method: str, backbone: str, variant: str, batch: int):
    torch.manual_seed(0)
    channels, size = (3, 32) if backbone == "convnet4" else (1, 28)
    if variant == "lightly":
        from lightly_peer import make_lightly_step

        net = ConvNet4(channels) if backbone == "convnet4" else SmallConvNet(channels, size)
        return make_lightly_step(method, net, learner_config(method), batch, channels, size)
    module = ConvNet4(channels) if backbone == "convnet4" else None
    config = learner_config(method, **({} if module else {"backbone": backbone}))
    learner = SiameseLearner(config, channels, size, backbone=module)
    groups = learner.parameter_groups(5e-4)
    if variant == "before":
        if module is not None:
            learner.backbone.to(memory_format=torch.contiguous_format)
            if learner.target_net is not None:
                learner.target_net.to(memory_format=torch.contiguous_format)
        optimizer = torch.optim.SGD(groups, lr=0.01, momentum=0.9)
    else:
        optimizer = fast_sgd(groups, lr=0.01, momentum=0.9)
    forward = torch.compile(learner) if variant == "after+compile" else learner
    x1, x2 = torch.randn(batch, channels, size, size), torch.randn(batch, channels, size, size)

    bf16 = variant == "after+bf16"

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = forward(x1, x2).loss
        loss.backward()
        optimizer.step()
        learner.update_target(0.5)

    return step


def timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backbones", nargs="+", default=["convnet4", "small_convnet"])
    parser.add_argument("--methods", nargs="+", default=["simsiam", "byol"])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--lightly", action="store_true", help="also time lightly's step")
    parser.add_argument("--bf16", action="store_true", help="also time bf16 autocast")
    args = parser.parse_args()
    variants = (["before", "after"] + (["after+compile"] if args.compile else [])
                + (["after+bf16"] if args.bf16 else [])
                + (["lightly"] if args.lightly else []))
    rows = []
    for backbone in args.backbones:
        for method in args.methods:
            steps, first = {}, {}
            for variant in variants:
                steps[variant] = make_step(method, backbone, variant, args.batch)
                first[variant] = timed(steps[variant])  # includes compilation
            times: dict[str, list[float]] = {v: [] for v in variants}
            for _ in range(args.rounds):
                for variant in variants:
                    times[variant].append(timed(steps[variant]))
            for variant in variants:
                median = statistics.median(times[variant])
                ratio = statistics.median(b / t for b, t in
                                          zip(times["before"], times[variant], strict=True))
                peer = "-"
                if args.lightly:
                    pairs = zip(times["lightly"], times[variant], strict=True)
                    peer = f"{statistics.median(p / t for p, t in pairs):.2f}x"
                rows.append([backbone, method, variant, f"{median * 1e3:.0f}",
                             f"{args.batch / median:.0f}", f"{ratio:.2f}x", peer,
                             f"{first[variant]:.1f}"])
    print(f"load average {os.getloadavg()[0]:.2f}")
    print_table(f"model step, batch {args.batch} (source images; two views each)",
                ["backbone", "method", "variant", "step ms", "source images/s",
                 "speed-up vs before (median ratio)", "speed-up vs lightly (median ratio)",
                 "first step s"], rows)


if __name__ == "__main__":
    main()
