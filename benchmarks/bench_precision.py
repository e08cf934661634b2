"""bf16 autocast against float32: a training step's speed, interleaved in one process.

For each learner, the float32 step and the same step under ``torch.autocast("cpu",
torch.bfloat16)`` (what ``device.precision=bf16-mixed`` does) run ``--steps`` steps each,
round by round; the figure is the median over rounds of the ratio within a round (wall
and process CPU time), so a load that changes during the run slows both alike.
Run: ``.venv/bin/python benchmarks/bench_precision.py [--threads 1] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch
from benchutil import print_table

from nocollapse.methods import SiameseLearner, learner_config
from nocollapse.train.precision import native_bf16

CASES = [("directpred", "small_convnet_2x2", 128), ("simsiam", "small_convnet_4x4", 128),
         ("simsiam", "small_convnet", 256)]


def make_step(method: str, backbone: str, batch: int, bf16: bool) -> Callable[[], None]:
    learner = SiameseLearner(learner_config(method, backbone=backbone), 1, 28)
    optimizer = torch.optim.SGD(learner.parameter_groups(5e-4), lr=0.01, momentum=0.9)
    x1, x2 = torch.randn(batch, 1, 28, 28), torch.randn(batch, 1, 28, 28)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = learner(x1, x2).loss
        loss.backward()
        optimizer.step()
        learner.update_target(0.5)

    return step


def _median_ratio(slow: list[float], fast: list[float]) -> float:
    return statistics.median(a / b for a, b in zip(slow, fast, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for method, backbone, batch in CASES:
        steps = {bf16: make_step(method, backbone, batch, bf16) for bf16 in (False, True)}
        for step in steps.values():
            step()
            step()
        wall: dict[bool, list[float]] = {False: [], True: []}
        cpu: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.rounds):
            for bf16, step in steps.items():
                start, start_cpu = time.perf_counter(), time.process_time()
                for _ in range(args.steps):
                    step()
                wall[bf16].append((time.perf_counter() - start) / args.steps)
                cpu[bf16].append((time.process_time() - start_cpu) / args.steps)
        rows.append([method, backbone, str(batch),
                     f"{statistics.median(wall[False]) * 1e3:.0f}",
                     f"{statistics.median(wall[True]) * 1e3:.0f}",
                     f"{_median_ratio(wall[False], wall[True]):.2f}x",
                     f"{_median_ratio(cpu[False], cpu[True]):.2f}x"])
    print(f"load average {os.getloadavg()[0]:.2f}; {native_bf16('cpu')[1]}")
    print_table("bf16 autocast against float32, one training step (median of rounds)",
                ["method", "backbone", "batch", "fp32 ms", "bf16 ms", "speed-up (wall)",
                 "speed-up (CPU time)"], rows)


if __name__ == "__main__":
    main()
