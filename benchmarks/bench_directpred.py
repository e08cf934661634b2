"""DirectPred overhead: step time over a linear-predictor BYOL step, by projector width.

Same backbone, batch and projector; the only difference is that DirectPred builds
``Wp`` from an eigendecomposition of ``F_hat`` (every ``freq`` steps) instead of
training it. Target (issue 6): overhead < 5% at width <= 512 with ``freq = 1``.
Run: ``.venv/bin/python benchmarks/bench_directpred.py [--widths 128 256 512 2048]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import median_seconds, print_table
from steps import make_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--widths", type=int, nargs="+", default=[128, 256, 512, 2048])
    parser.add_argument("--freqs", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    for width in args.widths:
        dims = {"proj_dim": width, "proj_hidden_dim": max(512, width)}
        step, _ = make_step("byol", 1, 28, args.batch, predictor="linear", **dims)
        linear = median_seconds(step, repeats=args.repeats, warmup=2)
        for freq in args.freqs:
            # eigendecompositions happen every `freq` steps: time a multiple of freq steps
            step, _ = make_step("directpred", 1, 28, args.batch, freq=freq, **dims)

            def block(step=step, freq=freq) -> None:
                for _ in range(freq):
                    step()

            seconds = median_seconds(block, repeats=max(2, args.repeats // freq), warmup=1) / freq
            rows.append([str(width), str(freq), f"{linear * 1e3:.0f}", f"{seconds * 1e3:.0f}",
                         f"{seconds / linear - 1:+.1%}"])
    print(f"load average {os.getloadavg()[0]:.2f}")
    print_table(f"DirectPred vs linear predictor, small_convnet 28x28, batch {args.batch}",
                ["width", "freq", "linear ms", "directpred ms", "overhead"], rows)


if __name__ == "__main__":
    main()
