"""tian2021-predictor-spectrum: the claim as the paper states it, built and trained predictors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nocollapse.diagnostics import commutator_norm, power_law_fit, predictor_in_basis
from nocollapse.experiments.predictor_spectrum import (
    ALIGNMENT_MAX,
    aligned,
    in_band,
    linear_byol_values,
    run,
    shuffled_fits,
)
from nocollapse.report import load_run
from nocollapse.report.theory_run import predictor_spectra


def _rotation(d: int, seed: int) -> np.ndarray:
    return np.linalg.qr(np.random.default_rng(seed).standard_normal((d, d)))[0]


def test_a_square_root_predictor_passes_and_other_laws_fail() -> None:
    # tian2021's claim built directly: Wp = U diag(sqrt(s)) U^T shares F's eigenbasis
    d = 32
    U = _rotation(d, 0)
    s = np.geomspace(1.0, 1e-2, d)
    F = (U * s) @ U.T
    for exponent, passes in ((0.5, True), (1.0, False), (0.25, False)):
        Wp = (U * s**exponent) @ U.T
        fit = power_law_fit(*predictor_in_basis(F, Wp))
        assert in_band(fit, d) is passes, (exponent, fit)
        assert aligned(commutator_norm(F, Wp))  # same eigenbasis: 0 up to round-off
    # the published run's fit: k = 0.337 on 7 of 128 modes fails on both counts
    published = power_law_fit(np.geomspace(1, 0.1, 7), np.geomspace(1, 0.1, 7) ** 0.337)
    assert not in_band(published, 128)
    assert not in_band(power_law_fit(s[:7], np.sqrt(s[:7])), d)  # too few modes fitted
    # a rotated square-root predictor: the right law on the diagonal is not alignment
    rotated = (_rotation(d, 1) * np.sqrt(s)) @ _rotation(d, 1).T
    assert commutator_norm(F, rotated) > ALIGNMENT_MAX


def test_overrides_merge_into_the_recipe_section_by_section(tmp_path: Path) -> None:
    # the regime search (docs/reproductions.md) drives the reproduction's own run this way
    recipe = linear_byol_values(tmp_path, "default", 0)
    paper = linear_byol_values(tmp_path, "default", 0, {
        "optim": {"lr": 0.03, "weight_decay": 4e-4}, "time_budget_s": 150.0,
        "learner": {"base_tau": 0.99}})
    assert paper["optim"] == {**recipe["optim"], "lr": 0.03, "weight_decay": 4e-4}
    assert paper["optim"]["momentum"] == 0.9 and paper["time_budget_s"] == 150.0
    assert paper["learner"] == {"predictor": "linear", "base_tau": 0.99,
                                "predictor_options": {"symmetrize": True}}
    assert recipe["optim"]["lr"] == 0.06 and recipe["time_budget_s"] == 90.0  # not mutated
    assert {k: v for k, v in paper.items() if k not in ("optim", "learner", "time_budget_s")} \
        == {k: v for k, v in recipe.items() if k not in ("optim", "learner", "time_budget_s")}


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("predictor-spectrum")
    return out, run(out, "quick", 0)


def test_quick_run_reports_the_measured_exponent_and_alignment(quick) -> None:
    out, result = quick
    loaded = load_run(out / "byol-linear")
    spectra = predictor_spectra(loaded, [int(r["epoch"]) for r in loaded.spectra])
    last = spectra[-1]
    assert last.fit is not None and result.params["exponent"] == last.fit.exponent
    claims = {c.statement.split(":")[-1].strip(): c for c in result.claims}
    assert claims["p_j ~ s_j^(1/2) in F_hat's eigenbasis"].passed == in_band(last.fit,
                                                                              len(last.s))
    commutator = result.params["commutator"]
    assert commutator is not None and 0.0 <= commutator <= 2.0
    assert claims["Wp and F_hat share an eigenbasis"].passed == (commutator <= ALIGNMENT_MAX)
    shuffled = shuffled_fits(last.s, last.p, 50, seed=1)
    assert sum(in_band(f) for f in shuffled) <= 5
    assert (out / "report" / "byol-linear-predictor_spectrum.png").exists()


def test_quick_run_fits_the_predictor_in_w_w_transposes_basis(quick) -> None:
    out, result = quick
    table = next(t for t in result.tables if "W_L W_L^T" in t.title)
    horizon, balance = float(table.rows[0][0]), float(table.rows[0][1])
    # 2 eta t from the run's own config and logged learning rates (t = sum lr / (1 - m))
    from nocollapse.runio import read_metrics
    from nocollapse.train.config import load_config

    config = load_config(out / "byol-linear" / "config.yaml", [])
    logged = [r for r in read_metrics(out / "byol-linear" / "metrics.jsonl") if "lr" in r]
    steps = [0] + [int(r["step"]) for r in logged]
    elapsed = sum(float(r["lr"]) * (b - a) for r, a, b in zip(logged, steps, steps[1:],
                                                              strict=False))
    expected = 2 * config.optim.weight_decay * elapsed / (1 - config.optim.momentum)
    assert horizon == pytest.approx(expected, rel=5e-3)  # printed to 3 significant digits
    assert 0.0 <= balance <= 2.0
    assert not (out / "byol-linear" / "checkpoints").exists()  # removed after the fit
