"""Busy-machine behaviour: step time by torch threads, OpenMP wait policy and competitors.

Each configuration runs in a fresh process (the OpenMP wait policy is read once, when
the OpenMP runtime loads with torch), timing the default run's step: SimSiam on
small_convnet 28x28, batch 128 (256 images through the network a step). Competitors
are CPU-bound Python processes (one busy loop each) started before the child and
stopped after it. The figure is the median step of ``--steps`` steps, and the
ratio to the same threads/policy with no competitor measured in the same sweep.
On a machine other people use as well the "0 competitors" row is whatever load they
add; the load average is printed before and after.
Run: ``.venv/bin/python benchmarks/bench_threads.py [--steps 15] [--competitors 0 1 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import print_table, timed_calls

HERE = Path(__file__).resolve()
POLICIES = {"default": {}, "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
            "ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"}}


def child(threads: int, steps: int) -> None:
    import statistics

    import torch

    torch.set_num_threads(threads)
    from steps import make_step

    step, _ = make_step("simsiam", 1, 28, 128)
    times = timed_calls(step, repeats=steps, warmup=1)
    print(json.dumps({"median": statistics.median(times), "threads": torch.get_num_threads()}))


def measure(threads: int, policy: str, competitors: int, steps: int) -> float:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NOCOLLAPSE_OMP")}
    env.update(POLICIES[policy])
    env["NOCOLLAPSE_OMP_WAIT_POLICY"] = "keep"  # measure the policy given, not the library's
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(competitors)]
    try:
        out = subprocess.run([sys.executable, str(HERE), "--child", str(threads), str(steps)],
                             env=env, check=True, capture_output=True, text=True)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])["median"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=list(POLICIES))
    parser.add_argument("--competitors", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    load = os.getloadavg()[0]
    results = {}
    for competitors in args.competitors:
        for threads in args.threads:
            for policy in args.policies:
                results[threads, policy, competitors] = measure(threads, policy, competitors,
                                                                args.steps)
    rows = []
    for (threads, policy, competitors), seconds in results.items():
        idle = results.get((threads, policy, min(args.competitors)))
        rows.append([str(threads), policy, str(competitors), f"{seconds * 1e3:.0f}",
                     f"{128 / seconds:.0f}", f"{seconds / idle:.2f}x" if idle else "-"])
    print_table(f"default step (SimSiam small_convnet 28x28, batch 128) by threads, "
                f"OMP_WAIT_POLICY and competing busy processes; load average {load:.1f} before"
                f" / {os.getloadavg()[0]:.1f} after",
                ["threads", "OMP_WAIT_POLICY", "competitors", "step ms",
                 "source images/s", "vs fewest competitors"], rows)


if __name__ == "__main__":
    main()
