"""Busy-machine behaviour: step time by torch threads, OpenMP wait policy and competitors.

Each configuration runs in a fresh process (the OpenMP wait policy is read once, when
the OpenMP runtime loads with torch), timing the default run's step: SimSiam on
small_convnet 28x28, batch 128 (256 images through the network a step). Competitors
are CPU-bound Python processes (one busy loop each) started before the child and
stopped after it. The figures are the mean step of ``--steps`` steps (what sets a run's
length; for ``tuned``, ``nocollapse train``'s default, its probes included), their median, and the
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
            "ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
            # libgomp (torch's OpenMP on Linux): spin this many times, then sleep.
            "spin1k": {"GOMP_SPINCOUNT": "1000"}, "spin10k": {"GOMP_SPINCOUNT": "10000"},
            "spin100k": {"GOMP_SPINCOUNT": "100000"}, "spin1M": {"GOMP_SPINCOUNT": "1000000"}}


def child(threads: int, steps: int) -> None:
    """Time the step at ``threads``; 0: start on every core under ``nocollapse train``'s tuner."""
    import statistics
    import time

    import torch

    from nocollapse.threads import ThreadTuner

    torch.set_num_threads(threads or os.cpu_count() or 1)
    from steps import make_step

    step, _ = make_step("simsiam", 1, 28, 128)
    if threads:
        times = timed_calls(step, repeats=steps, warmup=1)
    else:  # every step counts, the tuner's probes included
        tuner, times = ThreadTuner(torch.get_num_threads()), []
        step()
        for _ in range(steps):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
            tuner.record(times[-1])
    print(json.dumps({"median": statistics.median(times), "mean": statistics.fmean(times),
                      "threads": torch.get_num_threads()}))


def measure(threads: int, policy: str, competitors: int, steps: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "NOCOLLAPSE_OMP")}
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
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2, 0],
                        help="thread counts; 0: tuned, as nocollapse train does by default")
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
    fewest = min(args.competitors)
    best_idle = min(r["mean"] for (_, _, c), r in results.items() if c == fewest)
    for (threads, policy, competitors), result in results.items():
        mean, idle = result["mean"], results[threads, policy, fewest]["mean"]
        rows.append([str(threads or "tuned"), policy, str(competitors), f"{mean * 1e3:.0f}",
                     f"{result['median'] * 1e3:.0f}", f"{128 / mean:.0f}",
                     f"{mean / idle:.2f}x", f"{mean / best_idle:.2f}x"])
    print_table(f"default step (SimSiam small_convnet 28x28, batch 128) by threads, "
                f"OMP_WAIT_POLICY and competing busy processes; load average {load:.1f} before"
                f" / {os.getloadavg()[0]:.1f} after",
                ["threads", "OMP_WAIT_POLICY", "competitors", "mean step ms", "median step ms",
                 "source images/s", "vs itself, fewest competitors",
                 "vs the fastest, fewest competitors"], rows)


if __name__ == "__main__":
    main()
