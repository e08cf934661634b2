"""tian2021-predictor-spectrum on a real (quick) BYOL run with a linear predictor."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from nocollapse.experiments.predictor_spectrum import in_band, run, shuffled_fits
from nocollapse.report import load_run
from nocollapse.report.theory_run import predictor_spectra


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("predictor-spectrum")
    return out, run(out, "quick", 0)


def test_trained_linear_predictor_exponent_in_band_and_shuffled_pairing_out(quick) -> None:
    out, result = quick
    loaded = load_run(out / "byol-linear")
    spectra = predictor_spectra(loaded, [int(r["epoch"]) for r in loaded.spectra])
    first, last = spectra[0], spectra[-1]
    assert in_band(last.fit), last.fit  # the run that trained
    assert not in_band(first.fit), first.fit  # the random predictor of the first epoch
    shuffled = shuffled_fits(last.s, last.p, 50, seed=1)
    assert sum(in_band(f) for f in shuffled) <= 5
    assert np.median([f.r2 for f in shuffled]) < 0.5 * last.fit.r2
    assert result.passed, result.to_markdown()
    assert (out / "report" / "byol-linear-predictor_spectrum.png").exists()
