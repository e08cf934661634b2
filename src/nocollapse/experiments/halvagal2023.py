"""halvagal2023-isoloss: toy eigenvalue dynamics with and without IsoLoss (papers.md s. 2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nocollapse.experiments.registry import reproduction
from nocollapse.experiments.result import ReproductionResult, Table
from nocollapse.report.theory_figures import plot_comparisons
from nocollapse.theory import halvagal2023
from nocollapse.theory.result import Comparison, SimulationParams

CASES = {  # panel name -> (loss, iso)
    "Euclidean": ("l2", False),
    "Euclidean-Iso": ("l2", True),
    "Cosine": ("cosine", False),
    "Cosine-Iso": ("cosine", True),
}
# quick: 5x the step size for 1/5 of the steps (same ODE time, coarser steps)
STEPS = {"quick": 300, "default": 1500, "full": 3000}
LR = {"l2": {"quick": 0.05, "default": 0.01, "full": 0.005},
      "cosine": {"quick": 0.5, "default": 0.1, "full": 0.05}}


def _run_case(loss: str, iso: bool, size: str, seed: int) -> Comparison:
    params = SimulationParams(model="halvagal2023", loss=loss, iso=iso, steps=STEPS[size],
                              lr=LR[loss][size], seed=seed)
    return halvagal2023.run_comparison(params)


def _norm_drift(comp: Comparison) -> float:
    frob = comp.extras["frob2_sim"]
    return float(abs(frob[-1] / frob[0] - 1))


@reproduction("halvagal2023-isoloss", "halvagal2023",
              "closed-form-predictor eigenmode ODEs vs simulation; IsoLoss equalises rates")
def run(out: Path, size: str, seed: int) -> ReproductionResult:
    result = ReproductionResult("halvagal2023-isoloss", params={"steps": STEPS[size]})
    runs = {name: _run_case(loss, iso, size, seed) for name, (loss, iso) in CASES.items()}
    rows = []
    for name, comp in runs.items():
        error = float(np.max(comp.final_relative_error()))
        spread = comp.params["rate_spread_sim"]
        rows.append([name, f"{comp.simulated[-1].min():.4f}-{comp.simulated[-1].max():.4f}",
                     f"{comp.theory[-1].mean():.4f}", f"{error:.2%}", f"{spread:.2f}",
                     f"{comp.params['rate_spread_theory']:.2f}", f"{_norm_drift(comp):.2%}"])
        result.check(f"{name}: simulation follows the eigenmode ODE", "final error < 2%",
                     f"{error:.2%}", error < 0.02)
    sigma2 = runs["Euclidean"].params["sigma2"]
    for name in ("Euclidean", "Euclidean-Iso"):
        final = runs[name].simulated[-1]
        gap = float(np.max(np.abs(final * (1 + sigma2) - 1)))
        result.check(f"{name}: every s_m -> 1/(1+sigma^2)", f"{1 / (1 + sigma2):.4f}",
                     f"{final.min():.4f}-{final.max():.4f}", gap < 0.02)
    for base in ("Euclidean", "Cosine"):
        plain, iso = runs[base].params["rate_spread_sim"], runs[f"{base}-Iso"].params[
            "rate_spread_sim"]
        result.check(f"{base}: IsoLoss equalises convergence rates (slowest/fastest mode)",
                     "Iso ratio < plain ratio", f"{iso:.2f} vs {plain:.2f}",
                     bool(np.isfinite(iso) and np.isfinite(plain) and iso < plain))
    result.check("Cosine conserves ||W||_F^2 under the flow", "drift < 1%",
                 f"{_norm_drift(runs['Cosine']):.2%}", _norm_drift(runs["Cosine"]) < 0.01)
    result.check("Cosine-Iso does not conserve ||W||_F^2", "drift > 1%",
                 f"{_norm_drift(runs['Cosine-Iso']):.2%}", _norm_drift(runs["Cosine-Iso"]) > 0.01)
    result.tables.append(Table(
        "final eigenvalues of W W^T, simulation vs ODE",
        ["loss", "simulated s_m", "ODE s_m (mean)", "max rel. error",
         "rate ratio (sim)", "rate ratio (ODE)", "||W||^2 drift"], rows))
    plot_comparisons(runs, out / "eigenvalues.png")
    result.figures.append("eigenvalues.png")
    return result
