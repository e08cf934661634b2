"""``nocollapse.lightning.CollapseCallback`` in a real ``lightning.pytorch.Trainer`` on CPU.

The module is examples/own_loop.py's SimSiam, written the way lightly's examples write
it (backbone, projection head ending in BatchNorm, prediction head, negative cosine
loss, ``z`` detached in ``forward``; no lightly import), on 512 of scikit-learn's 8x8
digits, 48 steps. Measured here (lr 0.5, every 2 steps, patience 3): the healthy run's
effective rank stays above 0.39 of its highest; without the predictor or without the
stop-gradient it falls below a quarter of it and the monitor warns (steps 24-26 of 48),
naming that cause.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

pytest.importorskip("lightning")

import torch
from lightning.pytorch.loggers import CSVLogger

from nocollapse.cli.main import main
from nocollapse.lightning import CollapseCallback
from nocollapse.monitor import MonitorInputError
from nocollapse.runio import read_metrics

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own_loop.py"
_spec = importlib.util.spec_from_file_location("own_loop", EXAMPLE)
assert _spec is not None and _spec.loader is not None
own_loop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(own_loop)
SimSiam = own_loop.SimSiam

EPOCHS = 6
STEPS = EPOCHS * own_loop.IMAGES // own_loop.BATCH


def _fit(tmp_path: Path, name: str, module: object, **options: object
         ) -> tuple[object, CollapseCallback]:
    torch.manual_seed(0)
    return own_loop.lightning_run(tmp_path / name, module, EPOCHS,
                                  logger=CSVLogger(tmp_path / "csv", name=name), **options)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("lightning")
    cases = {"healthy": SimSiam(), "no_predictor": SimSiam(predictor=False),
             "no_stop_gradient": SimSiam(stop_gradient=False)}
    for name, module in cases.items():
        _fit(root, name, module)
    return {name: root / name for name in cases}


def _warnings(run: Path) -> list[dict]:
    path = run / "warnings.jsonl"
    return read_metrics(path) if path.exists() else []


def test_healthy_run_gives_no_warning(runs: dict[str, Path]) -> None:
    assert _warnings(runs["healthy"]) == []
    steps = [r["step"] for r in read_metrics(runs["healthy"])]
    assert steps[0] == 1 and steps[-1] == STEPS  # every step was seen
    assert len(read_metrics(runs["healthy"] / "spectra.jsonl")) == EPOCHS


@pytest.mark.parametrize(("case", "named", "not_named"), [
    ("no_predictor", "no predictor", "no stop-gradient"),
    ("no_stop_gradient", "no stop-gradient", "no predictor"),
])
def test_broken_module_warns_naming_its_cause(runs: dict[str, Path], case: str, named: str,
                                             not_named: str) -> None:
    warnings = _warnings(runs[case])
    assert warnings, f"{case} did not warn within {STEPS} steps"
    first = warnings[0]
    causes = " ".join(first["likely_causes"])
    assert named in causes and not_named not in causes, causes
    assert first["step"] < STEPS


def test_report_draws_every_run(runs: dict[str, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "report"
    assert main(["report", *map(str, runs.values()), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "likely: no predictor" in text and "likely: no stop-gradient" in text
    assert "no Wp_eigenvalues in spectra.jsonl: the run has no predictor" in text
    for name in runs:
        assert (out / f"{name}-Z_eigenvalues.png").stat().st_size > 0
    assert (out / "effective_rank.png").exists()


def test_diagnostics_reach_the_trainers_logger(runs: dict[str, Path]) -> None:
    csv = next((runs["healthy"].parent / "csv" / "healthy").rglob("metrics.csv"))
    header = csv.read_text().splitlines()[0].split(",")
    assert {"nocollapse/effective_rank", "nocollapse/collapse_level"} <= set(header)


def test_stop_on_collapse_stops_the_trainer_at_the_warning(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    trainer, _ = _fit(tmp_path, "stop", SimSiam(predictor=False), stop_on_collapse=True)
    warning = _warnings(tmp_path / "stop")[0]
    assert trainer.global_step == warning["step"] < STEPS
    summary = json.loads((tmp_path / "stop" / "summary.json").read_text())
    assert summary["stopped"] == f"collapse at step {warning['step']}"


def test_a_training_step_without_the_views_is_refused_by_name(tmp_path: Path) -> None:
    expected = re.escape("return {'loss': loss, 'z1': z1, 'z2': z2}")
    with pytest.raises(MonitorInputError, match=expected):
        _fit(tmp_path, "bad", SimSiam(output="loss"))


def test_the_docs_plain_loop_example_writes_the_predictor_spectra(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    monitor = own_loop.plain_loop(tmp_path / "plain", epochs=2)
    assert monitor.warnings == []
    spectra = read_metrics(tmp_path / "plain" / "spectra.jsonl")
    assert [s["epoch"] for s in spectra] == [1, 2]
    assert len(spectra[-1]["Wp_eigenvalues"]) == 32 and "alignment" in spectra[-1]
    assert json.loads((tmp_path / "plain" / "summary.json").read_text())["step"] == 16


def test_a_resumed_fit_restores_the_monitor_from_lightnings_checkpoint(tmp_path: Path) -> None:
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint

    torch.set_num_threads(1)

    def fit(epochs: int, ckpt_path: str | None) -> CollapseCallback:
        callback = CollapseCallback(tmp_path / "run", every=2, tensorboard=False)
        saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
        trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", logger=False,
                             enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[callback, saver])
        trainer.fit(SimSiam(predictor=False), own_loop.loader(), ckpt_path=ckpt_path)
        return callback

    first = fit(2, None)
    assert first.monitor is not None
    peak, last = first.monitor.core.warning.peak_rank, first.monitor.last_step
    second = fit(3, str(tmp_path / "ckpt" / "last.ckpt"))
    assert second.monitor is not None and second.monitor.core.warning.peak_rank >= peak > 0
    steps = [r["step"] for r in read_metrics(tmp_path / "run")]
    assert steps == sorted(set(steps)) and steps[-1] == 3 * 8 and last == 16
