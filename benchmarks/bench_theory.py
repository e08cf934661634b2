"""tian2021 theory engine: wall times and accuracy figures (papers.md section 1).

Run: ``.venv/bin/python benchmarks/bench_theory.py``. Prints the wall time of the default
``simulate`` comparison and of phase diagrams, the Theorem 1 invariant error of the
Euler-integrated matrix flow against the step size, and the SGD-vs-flow tracking error.
"""

from __future__ import annotations

import time

import numpy as np
from benchutil import machine_line, median_seconds, print_table

from nocollapse.theory.linear_flow import FlowConfig, integrate_flow
from nocollapse.theory.linear_sgd import sgd_simulate
from nocollapse.theory.phase import phase_diagram
from nocollapse.theory.result import SimulationParams
from nocollapse.theory.tian2021 import invariant_residual, run_comparison


def _flow_64(method: str) -> None:
    """The symmetrised full-matrix flow at n1 = n2 = 64 over 10^4 steps (issue 6, item 5)."""
    from nocollapse.theory.tian2021 import balanced_start

    cfg = FlowConfig.isotropic(64, 0.5, eta=0.1, symmetric=True)
    Wp0, W0, _ = balanced_start(64, 64, 1.0, 0)
    integrate_flow(Wp0, W0, cfg, 0.01, 10_000, method=method, record_every=1000)


def timings() -> list[list[object]]:
    rows: list[list[object]] = []
    cases = [
        ("run_comparison (defaults)", lambda: run_comparison(SimulationParams())),
        ("phase eta x sigma2, reduced 200x200", lambda: phase_diagram("eta", "sigma2")),
        ("phase beta x alpha_p, reduced 200x200", lambda: phase_diagram("beta", "alpha_p")),
        ("phase eta x sigma2, matrix 16x16", lambda: phase_diagram(grid=16, model="matrix")),
        ("matrix flow n1=n2=64, 1e4 Euler steps", lambda: _flow_64("euler")),
        ("matrix flow n1=n2=64, 1e4 RK4 steps", lambda: _flow_64("rk4")),
    ]
    for name, fn in cases:
        rows.append([name, f"{median_seconds(fn, repeats=3, warmup=1):.2f}"])
    return rows


def invariant_errors() -> list[list[object]]:
    rng = np.random.default_rng(0)
    W0 = 0.5 * rng.standard_normal((10, 20)) / np.sqrt(20)
    Wp0 = 0.5 * rng.standard_normal((10, 10)) / np.sqrt(10)
    cfg = FlowConfig.isotropic(20, 0.5, eta=0.1, beta=0.5)
    rows: list[list[object]] = []
    for method, dt in (("euler", 1e-2), ("euler", 1e-3), ("rk4", 1e-2)):
        steps = round(10 / dt)
        start = time.perf_counter()
        traj = integrate_flow(Wp0, W0, cfg, dt, steps, method=method, record_every=steps)
        wall = time.perf_counter() - start
        rows.append([method, dt, f"{invariant_residual(traj, 1.0, 0.1)[-1]:.2e}", f"{wall:.2f}"])
    return rows


def sgd_errors() -> list[list[object]]:
    rng = np.random.default_rng(0)
    W0 = 0.5 * rng.standard_normal((3, 6)) / np.sqrt(6)
    Wp0 = 0.5 * rng.standard_normal((3, 3)) / np.sqrt(3)
    cfg = FlowConfig.isotropic(6, 0.5, eta=0.1, beta=0.5)
    rows: list[list[object]] = []
    for lr, samples in ((0.02, 500), (0.02, 2000), (0.01, 2000), (0.01, 8000)):
        steps = round(5 / lr)
        sgd = sgd_simulate(Wp0, W0, cfg, lr=lr, steps=steps, samples=samples,
                           record_every=steps)
        ode = integrate_flow(Wp0, W0, cfg, lr, steps, record_every=steps)
        err = np.linalg.norm(sgd.W[-1] - ode.W[-1]) / np.linalg.norm(ode.W[-1])
        rows.append([lr, samples, f"{err:.2e}"])
    return rows


def main() -> None:
    print(machine_line())
    print_table("tian2021 wall time (median of 3, s)", ["case", "seconds"], timings())
    print_table("Theorem 1 invariant, n1=20 n2=10 EMA beta=0.5 eta=0.1, t=10",
                ["method", "dt", "relative error", "seconds"], invariant_errors())
    print_table("L2 SGD vs Lemma 1 flow, n1=6 n2=3, t=5: relative error of W",
                ["lr", "samples/step", "relative error"], sgd_errors())


if __name__ == "__main__":
    main()
