"""bao2023-normalization: L2 vs cosine loss across weight decay (docs/theory.md#bao2023)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nocollapse.experiments.registry import reproduction
from nocollapse.experiments.result import ReproductionResult, Table
from nocollapse.report.theory_figures import plot_comparisons, plot_curves
from nocollapse.theory import bao2023
from nocollapse.theory.result import Comparison, SimulationParams

SIGMA2 = 0.5
RHOS = {"quick": (0.05, 0.25), "default": (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5),
        "full": tuple(np.round(np.linspace(0.02, 0.6, 16), 3))}
STEPS = {"quick": 1500, "default": 4000, "full": 8000}
COLLAPSED = 1e-8  # largest eigenvalue of Phi Phi^T below this: complete collapse


def _run(loss: str, rho: float, size: str, seed: int) -> Comparison:
    params = SimulationParams(model="bao2023", loss=loss, eta=float(rho), sigma2=SIGMA2,
                              steps=STEPS[size], seed=seed)
    return bao2023.run_comparison(params)


def _alive(comp: Comparison) -> int:
    final = comp.simulated[-1]
    return int(np.sum(final > max(COLLAPSED, 1e-3 * final.max())))


@reproduction("bao2023-normalization", "bao2023",
              "L2 collapses above rho_c = 1/(4(1+sigma^2)); cosine keeps a non-collapsed state")
def run(out: Path, size: str, seed: int) -> ReproductionResult:
    rho_c = bao2023.l2_threshold(SIGMA2)
    result = ReproductionResult("bao2023-normalization",
                                params={"sigma2": SIGMA2, "rho_c": rho_c, "steps": STEPS[size]})
    rhos = RHOS[size]
    runs = {(loss, rho): _run(loss, rho, size, seed) for loss in ("l2", "cosine") for rho in rhos}
    rows: list[list[str]] = []
    top: dict[str, list[float]] = {"l2": [], "cosine": []}
    for (loss, rho), comp in runs.items():
        s_max = float(comp.simulated[-1].max())
        top[loss].append(s_max)
        rows.append([loss, f"{rho:g}", "above" if rho > rho_c else "below", f"{s_max:.3g}",
                     f"{_alive(comp)}/{comp.simulated.shape[1]}",
                     f"{comp.extras['N_Phi'][0]:.3f} -> {comp.extras['N_Phi'][-1]:.3f}"])
    above = [rho for rho in rhos if rho > rho_c]
    below = [rho for rho in rhos if rho < rho_c]
    l2_above = max(runs["l2", rho].simulated[-1].max() for rho in above)
    result.check("L2, rho > rho_c: every eigenvalue of Phi Phi^T -> 0",
                 f"max s < {COLLAPSED:g} for rho in {above}", f"{l2_above:.2g}",
                 l2_above < COLLAPSED)
    l2_below = min(runs["l2", rho].simulated[-1].max() for rho in below)
    result.check("L2, rho < rho_c: not collapsed (from this start)", "max s > 1e-3",
                 f"{l2_below:.3g}", l2_below > 1e-3)
    alive = min(_alive(runs["cosine", rho]) for rho in rhos)
    n2 = runs["cosine", rhos[0]].simulated.shape[1]
    result.check("cosine: non-collapsed at every rho, all modes alive",
                 f"{n2}/{n2} modes", f"min {alive}/{n2}", alive == n2)
    _check_norms_then_plateau(result, runs["cosine", max(rhos)])
    result.tables.append(Table(f"final state after {STEPS[size]} steps (sigma^2 = {SIGMA2}, "
                               f"rho_c = {rho_c:.4f})",
                               ["loss", "rho", "vs rho_c", "max s", "alive modes",
                                "||Phi||_F start -> end"], rows))
    rho_axis = np.asarray(rhos, dtype=float)
    plot_curves({loss: (rho_axis, np.maximum(np.asarray(v), 1e-30)) for loss, v in top.items()},
                out / "boundary.png", xlabel="weight decay rho", ylabel="final max s_j",
                title="L2 vs cosine: top eigenvalue of Phi Phi^T", log_y=True,
                vlines={"rho_c (L2)": rho_c})
    plot_comparisons({f"{loss}, rho={max(rhos):g}": runs[loss, max(rhos)]
                      for loss in ("l2", "cosine")}, out / "trajectories.png", log_y=True)
    result.figures += ["boundary.png", "trajectories.png"]
    return result


def _check_norms_then_plateau(result: ReproductionResult, comp: Comparison) -> None:
    """docs/theory.md#bao2023: N_Phi, N_Psi fall first, then the eigenmodes stop decaying."""
    norm = comp.extras["N_Phi"]
    half = len(norm) // 2
    fell = norm[half] / norm[0]
    s_max = comp.simulated[:, 0]
    late_change = float(abs(np.log(s_max[-1] / s_max[half])))
    result.check("cosine: ||Phi||_F falls in the first half", "ratio < 0.5",
                 f"{fell:.3f}", fell < 0.5)
    result.check("cosine: then the top eigenvalue is stationary (second half)",
                 "|log change| < log 2", f"{late_change:.3f}", late_change < np.log(2))
