"""wang2022-uniformity: which uniformity indicator sees dimensional collapse, and when.

docs/theory.md#wang2022: Wang & Isola's uniformity is known to be insensitive to
dimensional collapse; the Wasserstein uniformity is sensitive to it. Three
trajectories of a linear encoder under the exact per-mode gradient flow of the
quartic landscape (docs/theory.md#ziyin2023) are compared: a healthy one (every mode
learned), a dimensional collapse (the weak half of the modes dies) and a complete
collapse (every mode dies). Embeddings along each are ``z ~ N(0, diag(d_i w_i^2))``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nocollapse.diagnostics import dims_above
from nocollapse.experiments.registry import reproduction
from nocollapse.experiments.result import ReproductionResult, Table
from nocollapse.report.theory_figures import plot_curves
from nocollapse.theory.landscape import make_landscape, mode_w2_trajectory
from nocollapse.theory.uniformity import uniformity_of_modes

SPECTRUM = np.geomspace(1.0, 0.1, 8)
AUG = 0.02
RUNS = {"healthy": 0.05, "dimensional collapse": 0.6, "complete collapse": 2.5}  # gamma
INDICATORS = {"Wang & Isola": "uniformity_wang_isola",
              "Wasserstein": "uniformity_wasserstein"}
SAMPLES = {"quick": 256, "default": 1024, "full": 4096}
POINTS = {"quick": 60, "default": 200, "full": 400}
T_END = 40.0


def _trajectory(gamma: float, size: str, seed: int) -> dict[str, np.ndarray]:
    landscape = make_landscape(SPECTRUM, AUG, gamma, augmentation_model="marginal")
    times = np.linspace(0.0, T_END, POINTS[size])
    variances = mode_w2_trajectory(landscape, 0.05, times) * SPECTRUM  # marginal: a+s = d
    values = uniformity_of_modes(variances, n_samples=SAMPLES[size], seed=seed)
    live = np.array([dims_above(row, 1e-2) for row in variances])
    return {"t": times, "live": live, "learned": np.array(landscape.learned_rank()), **values}


def _separation_time(run: dict[str, np.ndarray], healthy: dict[str, np.ndarray], key: str,
                     fraction: float = 0.5) -> float:
    """First time the run's indicator is ``fraction`` of its final gap away from healthy."""
    gap = np.abs(run[key] - healthy[key])
    if gap[-1] <= 0:
        return float("nan")
    hits = np.nonzero(gap >= fraction * gap[-1])[0]
    return float(run["t"][hits[0]])


@reproduction("wang2022-uniformity", "wang2022",
              "Wang & Isola vs Wasserstein uniformity along healthy and collapsing trajectories")
def run(out: Path, size: str, seed: int) -> ReproductionResult:
    result = ReproductionResult("wang2022-uniformity", params={
        "spectrum": SPECTRUM.round(4).tolist(), "aug": AUG, "gammas": RUNS,
        "samples": SAMPLES[size]})
    traj = {name: _trajectory(gamma, size, seed) for name, gamma in RUNS.items()}
    healthy, dim, full = (traj[k] for k in RUNS)
    sensitivity = {}
    for label, key in INDICATORS.items():
        span = full[key][-1] - healthy[key][-1]
        sensitivity[label] = float((dim[key][-1] - healthy[key][-1]) / span)
    result.check("Wasserstein is more sensitive to dimensional collapse than Wang & Isola",
                 "share of the complete-collapse change seen at dimensional collapse: "
                 "Wasserstein > 2x Wang & Isola",
                 f"{sensitivity['Wasserstein']:.2f} vs {sensitivity['Wang & Isola']:.2f}",
                 sensitivity["Wasserstein"] > 2 * max(sensitivity["Wang & Isola"], 0.0))
    result.check("Both indicators flag complete collapse (worse than healthy)",
                 "final value higher than healthy for both",
                 ", ".join(f"{lbl}: {full[k][-1] - healthy[k][-1]:+.3f}"
                           for lbl, k in INDICATORS.items()),
                 all(full[k][-1] > healthy[k][-1] for k in INDICATORS.values()))
    live_final = int(dim["live"][-1])
    rank_time = float(dim["t"][np.argmax(dim["live"] <= live_final)])
    rows = [[name, str(int(run["learned"])), str(int(run["live"][-1])),
             *(f"{run[k][-1]:.3f}" for k in INDICATORS.values())] for name, run in traj.items()]
    result.tables.append(Table("final state (t = 40)", ["trajectory", "learned modes",
                               "live dims (1e-2)", *INDICATORS], rows))
    timing = [[label, f"{sensitivity[label]:.2f}", f"{_separation_time(dim, healthy, key):.2f}"]
              for label, key in INDICATORS.items()]
    timing.append(["live dims reach final count", "", f"{rank_time:.2f}"])
    result.tables.append(Table("dimensional collapse: sensitivity and detection time",
                               ["indicator", "sensitivity", "t at half its final separation"],
                               timing))
    for label, key in INDICATORS.items():
        name = f"{key}.png"
        plot_curves({run_name: (run["t"], run[key]) for run_name, run in traj.items()},
                    out / name, xlabel="t (gradient-flow time)", ylabel=label,
                    title=f"{label} uniformity (lower = more uniform)")
        result.figures.append(name)
    return result
