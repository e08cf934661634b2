"""Scaling: step time and peak memory as batch and projector width double; CPU DDP.

Each (batch, width) point runs in a fresh process so that its peak resident memory
(``ru_maxrss``) is its own. The DDP part trains the same global batch with one
process and with two gloo processes (``nocollapse train``, Lightning Fabric) and
compares images/s from ``metrics.jsonl``.
Run: ``.venv/bin/python benchmarks/bench_scaling.py [--no-ddp]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import median_seconds, print_table

HERE = Path(__file__).resolve()


def one_point(method: str, batch: int, width: int, repeats: int) -> dict[str, float]:
    """Run in a child process: median step seconds and peak RSS growth (MiB)."""
    from steps import make_step

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    step, _ = make_step(method, 1, 28, batch, proj_dim=width, proj_hidden_dim=max(512, width))
    seconds = median_seconds(step, repeats=repeats, warmup=1)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "peak_mib": (after - before) / 1024}


def _child(method: str, batch: int, width: int, repeats: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, str(HERE), "--one", method, str(batch), str(width),
                          str(repeats)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ddp_images_per_s(devices: int, global_batch: int, steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "nocollapse", "train", "--quiet", "--out", f"{tmp}/run",
                   f"device.devices={devices}", "device.strategy=ddp" if devices > 1 else
                   "device.strategy=auto", f"data.batch_size={global_batch // devices}",
                   "data.subset=4096", "epochs=0", f"max_steps={steps}", "log_every=5",
                   "eval.random_baseline=false", "time_budget_s=600"]
        subprocess.run(command, check=True, capture_output=True, text=True)
        lines = [json.loads(x) for x in Path(f"{tmp}/run/metrics.jsonl").read_text().splitlines()]
    rates = [r["images_per_s"] for r in lines if r.get("images_per_s")][1:]  # skip warm-up
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--method", default="directpred")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-ddp", action="store_true")
    args = parser.parse_args()
    if args.one:
        method, batch, width, repeats = args.one
        print(json.dumps(one_point(method, int(batch), int(width), int(repeats))))
        return
    rows = []
    for batch, width in [(64, 128), (128, 128), (256, 128), (512, 128),
                         (256, 256), (256, 512), (256, 1024), (256, 2048)]:
        point = _child(args.method, batch, width, args.repeats)
        rows.append([str(batch), str(width), f"{point['seconds'] * 1e3:.0f}",
                     f"{batch / point['seconds']:.0f}", f"{point['peak_mib']:.0f}"])
    print(f"load average {os.getloadavg()[0]:.2f}")
    print_table(f"{args.method} step on small_convnet 28x28 (one process)",
                ["batch", "width", "step ms", "source images/s", "peak RSS growth MiB"], rows)
    if not args.no_ddp:
        single, double = ddp_images_per_s(1, 256, 25), ddp_images_per_s(2, 256, 25)
        print_table("CPU DDP at global batch 256 (nocollapse train, default data)",
                    ["processes", "source images/s", "speed-up"],
                    [["1", f"{single:.0f}", "1.00x"], ["2 (gloo)", f"{double:.0f}",
                                                       f"{double / single:.2f}x"]])


if __name__ == "__main__":
    main()
