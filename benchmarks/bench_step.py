"""Training-step throughput per preset, and achieved FLOP/s against a plain matmul.

Unit: source images/s (a step takes ``batch`` images and augments each twice). "of peak"
is the step's FLOP/s over a float32 2048x2048 matmul's FLOP/s on the same machine: the
practical compute ceiling here. Also: augmentation time as a share of the step (both
views). Run: ``.venv/bin/python benchmarks/bench_step.py [--resnet] [--threads N]``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import matmul_flops, median_seconds, print_table
from steps import step_flops, step_seconds

from nocollapse.data import make_augment
from nocollapse.methods import method_names


def augment_seconds(preset: str, channels: int, size: int, batch: int) -> float:
    augment = make_augment(preset)
    images = torch.randint(0, 256, (batch, channels, size, size), dtype=torch.uint8)
    generator = torch.Generator().manual_seed(0)
    return median_seconds(lambda: (augment(images, generator), augment(images, generator)),
                          repeats=5, warmup=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--resnet", action="store_true",
                        help="also ResNet-18 at 32x32x3 (SimSiam only: ~36 s a step on 2 cores)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    peak = matmul_flops()
    cases = [("small_convnet", 1, 28, "28x1")]
    if args.resnet:
        cases.append(("resnet18", 3, 32, "32x3"))
    rows = []
    for backbone, channels, size, preset in cases:
        small = backbone == "small_convnet"
        aug = augment_seconds(preset, channels, size, args.batch)
        for method in method_names() if small else ("simsiam",):
            seconds = step_seconds(method, channels, size, args.batch,
                                   args.repeats if small else 1, 2 if small else 0,
                                   backbone=backbone)
            flops = step_flops(method, channels, size, args.batch, backbone=backbone)
            rows.append([backbone, f"{size}x{size}x{channels}", method, f"{seconds:.3f}",
                         f"{args.batch / seconds:.0f}", f"{flops / seconds / 1e9:.1f}",
                         f"{flops / seconds / peak:.1%}", f"{aug / (aug + seconds):.1%}"])
    print(f"load average {os.getloadavg()[0]:.2f}; matmul peak {peak / 1e9:.1f} GFLOP/s")
    print_table(f"training step, batch {args.batch}",
                ["backbone", "input", "method", "step s", "source images/s", "GFLOP/s", "of peak",
                 "augment share"], rows)


if __name__ == "__main__":
    main()
