"""DirectPred overhead: step time over a linear-predictor BYOL step, by projector width.

Same backbone, batch and projector; the only difference is that DirectPred builds
``Wp`` from an eigendecomposition of ``F_hat`` (every ``freq`` steps) instead of
training it. Variants: ``update=before`` (the matrix of the current batch, rebuilt
on the critical path: this project's order before issue 11), ``update=after`` (the
authors' order), with ``solver=eigh`` (float64) or ``eigh32``, and the rebuild on a
worker thread (``background``). The steps of all variants are interleaved round by
round, so a busy machine slows them alike; the figures are the median (and the best)
over rounds of each variant's step over the linear step of the same round, in wall
time, and the median in CPU time of the process (which counts the worker thread's
work: on a CPU whose cores the step already fills, a thread only helps the wall time
if cores are idle). Target (issue 11): <= 2%.
Run: ``.venv/bin/python benchmarks/bench_directpred.py [--widths 512 2048] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import print_table
from steps import make_step

VARIANTS = {
    "before, eigh": {"update": "before", "solver": "eigh"},
    "after, eigh": {"update": "after", "solver": "eigh", "background": False},
    "after, eigh, thread": {"update": "after", "solver": "eigh", "background": True},
    "after, eigh32": {"update": "after", "solver": "eigh32", "background": False},
    "after, eigh32, thread": {"update": "after", "solver": "eigh32", "background": True},
    "after, newton-schulz": {"update": "after", "solver": "newton-schulz", "background": False},
    "after, newton-schulz, thread": {"update": "after", "solver": "newton-schulz",
                                     "background": True},
}


def _seconds(step, steps: int) -> tuple[float, float]:
    """(wall, CPU) seconds a step; CPU time counts the worker thread's work too."""
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="steps timed per round")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for width in args.widths:
        dims = {"proj_dim": width, "proj_hidden_dim": max(512, width)}
        steps = {"linear": make_step("byol", 1, 28, args.batch, predictor="linear", **dims)[0]}
        for name in args.variants:
            steps[name] = make_step("directpred", 1, 28, args.batch, **dims, **VARIANTS[name])[0]
        for step in steps.values():
            step()  # warm-up
        wall: dict[str, list[float]] = {name: [] for name in steps}
        cpu: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                seconds, cpu_seconds = _seconds(step, args.steps)
                wall[name].append(seconds)
                cpu[name].append(cpu_seconds)
        linear = statistics.median(wall["linear"])
        for name in args.variants:
            ratios = [t / base for t, base in zip(wall[name], wall["linear"], strict=True)]
            cpu_ratios = [t / base for t, base in zip(cpu[name], cpu["linear"], strict=True)]
            rows.append([str(width), name, f"{linear * 1e3:.0f}",
                         f"{statistics.median(wall[name]) * 1e3:.0f}",
                         f"{statistics.median(ratios) - 1:+.1%}",
                         f"{min(ratios) - 1:+.1%}",
                         f"{statistics.median(cpu_ratios) - 1:+.1%}"])
    print(f"load average {os.getloadavg()[0]:.2f}")
    print_table(f"DirectPred (freq 1) vs linear predictor, small_convnet 28x28, batch "
                f"{args.batch} ({2 * args.batch} images a step)",
                ["width", "variant", "linear ms", "directpred ms", "overhead (median ratio)",
                 "overhead (best round)", "CPU-time overhead (median)"],
                rows)


if __name__ == "__main__":
    main()
