"""ziyin2023-landscape: learned rank vs weight decay and augmentation (docs/theory.md#ziyin2023).

The per-mode quartic landscape predicts, mode by mode, which directions a linear
encoder learns and with which singular value; full-matrix gradient descent on the
same loss checks every prediction. The data spectrum is imbalanced (geometric), so
the claim "weak directions collapse first" is visible as the learned set shrinking
from the bottom of the spectrum.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TypedDict

import numpy as np

from nocollapse.experiments.registry import reproduction
from nocollapse.experiments.result import ReproductionResult, Table
from nocollapse.report.theory_figures import plot_curves
from nocollapse.theory.landscape import gradient_descent, make_landscape

SPECTRUM = np.geomspace(1.0, 0.1, 8)  # imbalanced data variances d_i
AUG_FIXED, GAMMA_FIXED = 0.02, 0.2
GAMMAS = {"quick": (0.05, 0.5, 1.3), "default": (0.02, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9, 1.3, 1.7),
          "full": tuple(np.round(np.linspace(0.02, 2.1, 21), 3))}
AUGS = {"quick": (0.0, 0.09), "default": (0.0, 0.02, 0.04, 0.06, 0.08, 0.095),
        "full": tuple(np.round(np.linspace(0.0, 0.099, 12), 4))}
LEARNED = 1e-6  # a mode with w_i^2 above this (after descent) counts as learned


class _Point(TypedDict):
    gamma: float
    aug: float
    predicted: int
    found: int
    prefix: bool
    sv_error: float
    found_sv: np.ndarray


def _point(gamma: float, aug: float, seed: int) -> _Point:
    landscape = make_landscape(SPECTRUM, aug, gamma, augmentation_model="marginal")
    descent = gradient_descent(landscape, seed=seed)
    learned = descent.mode_w2 > LEARNED
    predicted_sv, found_sv = np.sqrt(landscape.learned_w2()), np.sqrt(descent.mode_w2)
    return {
        "gamma": gamma, "aug": aug, "predicted": landscape.learned_rank(),
        "found": int(learned.sum()),
        "prefix": bool(np.all(learned[: learned.sum()])),  # learned = top modes only
        "sv_error": float(np.max(np.abs(found_sv - predicted_sv)) / predicted_sv.max()
                          if predicted_sv.max() > 0 else np.max(found_sv)),
        "found_sv": found_sv,
    }


def _nonincreasing(values: list[int]) -> bool:
    return all(b <= a for a, b in itertools.pairwise(values))


@reproduction("ziyin2023-landscape", "ziyin2023",
              "learned rank and singular values vs weight decay and augmentation, "
              "per-mode prediction vs gradient descent")
def run(out: Path, size: str, seed: int) -> ReproductionResult:
    result = ReproductionResult("ziyin2023-landscape", params={
        "spectrum": SPECTRUM.round(4).tolist(), "aug_model": "marginal",
        "aug_fixed": AUG_FIXED, "gamma_fixed": GAMMA_FIXED})
    by_gamma = [_point(g, AUG_FIXED, seed) for g in GAMMAS[size]]
    by_aug = [_point(GAMMA_FIXED, s, seed) for s in AUGS[size]]
    points = by_gamma + by_aug
    mismatches = [(p["gamma"], p["aug"]) for p in points if p["predicted"] != p["found"]]
    result.check("learned rank: per-mode prediction = gradient descent",
                 f"{len(points)}/{len(points)} grid points agree",
                 f"{len(points) - len(mismatches)}/{len(points)}", not mismatches)
    worst = max(p["sv_error"] for p in points)
    result.check("singular values: prediction vs gradient descent", "max error < 1%",
                 f"{worst:.2e}", worst < 0.01)
    ranks_g, ranks_a = [p["found"] for p in by_gamma], [p["found"] for p in by_aug]
    result.check("rank falls as weight decay grows", "non-increasing, ends lower",
                 str(ranks_g), _nonincreasing(ranks_g) and ranks_g[-1] < ranks_g[0])
    result.check("rank falls as augmentation grows (marginal model)",
                 "non-increasing, ends lower", str(ranks_a),
                 _nonincreasing(ranks_a) and ranks_a[-1] < ranks_a[0])
    prefix = all(p["prefix"] for p in points)
    result.check("imbalanced data: the weak directions collapse first",
                 "learned modes are always the strongest ones", "yes" if prefix else "no", prefix)
    rows = [[f"{p['gamma']:g}", f"{p['aug']:g}", str(p["predicted"]), str(p["found"]),
             " ".join(f"{v:.3f}" for v in p["found_sv"])] for p in points]
    result.tables.append(Table("learned rank and singular values (gradient descent)",
                               ["gamma", "aug", "predicted rank", "GD rank", "GD singular values"],
                               rows))
    gammas, augs = np.asarray(GAMMAS[size]), np.asarray(AUGS[size])
    plot_curves({"predicted": (gammas, np.array([p["predicted"] for p in by_gamma])),
                 "gradient descent": (gammas, np.array(ranks_g))},
                out / "rank_vs_gamma.png", xlabel="weight decay gamma", ylabel="learned rank",
                title=f"rank vs weight decay (aug = {AUG_FIXED})")
    plot_curves({"predicted": (augs, np.array([p["predicted"] for p in by_aug])),
                 "gradient descent": (augs, np.array(ranks_a))},
                out / "rank_vs_aug.png", xlabel="augmentation variance", ylabel="learned rank",
                title=f"rank vs augmentation (gamma = {GAMMA_FIXED})")
    result.figures += ["rank_vs_gamma.png", "rank_vs_aug.png"]
    return result
