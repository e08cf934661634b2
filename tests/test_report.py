"""`nocollapse report` on hand-written run directories (training, simulation, truncated)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from nocollapse.cli.main import main
from nocollapse.errors import NocollapseError
from nocollapse.report import build_report, load_run
from nocollapse.report.figures import DPI, FIGSIZE
from nocollapse.runio import write_config

PIXELS = (round(FIGSIZE[1] * DPI), round(FIGSIZE[0] * DPI))  # (rows, columns)


def _write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _training_run(root: Path, name: str = "train-run", dim: int = 4, epochs: int = 3) -> Path:
    run = root / name
    run.mkdir(parents=True)
    write_config(run, {"method": "simsiam", "epochs": epochs})
    rng = np.random.default_rng(0)
    metrics = []
    for step in range(0, 40, 5):
        metrics.append(
            {
                "step": step,
                "epoch": step // 15,
                "loss": -0.5 - step / 100,
                "collapse_level": 0.1,
                "effective_rank": 3.5,
            }
        )
    metrics.append({"step": 40, "epoch": 2, "knn_accuracy": 0.42})
    _write_jsonl(run / "metrics.jsonl", metrics)
    spectra = []
    for epoch in range(epochs):
        q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
        spectra.append(
            {
                "epoch": epoch,
                "step": 15 * epoch,
                "F_eigenvalues": sorted(rng.uniform(0.1, 1, dim), reverse=True),
                "Wp_eigenvalues": sorted(rng.uniform(-0.1, 1, dim), reverse=True),
                "Z_eigenvalues": sorted(rng.uniform(0.1, 1, dim), reverse=True),
                "alignment": np.abs(q).tolist(),
            }
        )
    _write_jsonl(run / "spectra.jsonl", spectra)
    return run


def _simulation_run(root: Path) -> Path:
    run = root / "sim-run"
    run.mkdir(parents=True)
    write_config(run, {"command": "simulate", "modes": 3})
    records = []
    for step, t in enumerate(np.linspace(0, 5, 11)):
        modes = [float(0.5 * (1 - np.exp(-(j + 1) * t)) + 1e-3) for j in range(3)]
        records.append(
            {"t": float(t), "simulated": modes, "theory": modes, "collapse_level": 0.0,
             "commutator": float(np.exp(-t)), "step": 10 * step}
        )  # fmt: skip
    _write_jsonl(run / "metrics.jsonl", records)
    return run


def _assert_png(path: Path) -> None:
    assert path.exists() and path.stat().st_size > 0, path
    image = imread(path)
    assert image.shape[:2] == PIXELS
    assert np.ptp(image[..., :3]) > 0, f"{path} is a blank image"


def test_training_run_report_writes_every_listed_figure(tmp_path: Path) -> None:
    run = _training_run(tmp_path)
    report = build_report([run])
    assert report.out_dir == run / "report"
    names = {p.name for p in report.files}
    expected = {
        "loss.png",
        "knn_accuracy.png",
        "collapse_level.png",
        "effective_rank.png",
        "train-run-F_eigenvalues.png",
        "train-run-Wp_eigenvalues.png",
        "train-run-Z_eigenvalues.png",
        "train-run-alignment.png",
        "report.md",
    }
    assert expected <= names
    for path in report.files:
        if path.suffix == ".png":
            _assert_png(path)
    text = report.markdown.read_text()
    assert "| train-run | training | unfinished (running or crashed) | step 40 |" in text
    assert "0.42" in text  # final k-NN accuracy in the table
    for name in expected - {"report.md"}:
        assert f"]({name})" in text


def test_finished_run_status_comes_from_summary_json(tmp_path: Path) -> None:
    run = _training_run(tmp_path)
    (run / "summary.json").write_text(json.dumps({"stopped": "completed", "step": 40}))
    assert "| train-run | training | completed |" in build_report([run]).markdown.read_text()


def test_callback_runs_are_labelled_by_their_names_and_reach_the_summarys_step(
        tmp_path: Path) -> None:
    from nocollapse.report.runs import label_runs

    # three Lightning fits, each <experiment>/lightning_logs/version_0/nocollapse
    runs = [_training_run(tmp_path / name / "lightning_logs" / "version_0", "nocollapse")
            for name in ("healthy", "no-pred", "no-stop")]
    summary = {"stopped": "completed", "step": 96, "source": "nocollapse.Monitor"}
    (runs[0] / "summary.json").write_text(json.dumps(summary))
    text = build_report(runs, tmp_path / "out").markdown.read_text()
    assert "| healthy | training | completed | step 96 |" in text  # not the last line's 40
    assert "| no-pred | training | unfinished" in text and "| version_0" not in text
    # only the versions differ: they name the runs; a name in config.yaml wins
    two = [tmp_path / "exp" / "lightning_logs" / f"version_{k}" / "nocollapse" for k in (0, 1)]
    assert label_runs(two) == ["version_0", "version_1"]
    assert label_runs(two, ["simsiam", None]) == ["simsiam", "version_1"]


def test_simulation_run_report_draws_modes(tmp_path: Path) -> None:
    run = _simulation_run(tmp_path)
    assert load_run(run).kind == "simulation"
    report = build_report([run], tmp_path / "out")
    names = {p.name for p in report.files}
    assert {"sim-run-modes.png", "sim-run-extras.png", "collapse_level.png"} <= names
    _assert_png(tmp_path / "out" / "sim-run-modes.png")
    _assert_png(tmp_path / "out" / "sim-run-extras.png")
    assert "t 5" in report.markdown.read_text()


def test_truncated_run_in_progress_is_reported_with_notes(tmp_path: Path) -> None:
    run = tmp_path / "crashed"
    run.mkdir()
    with open(run / "metrics.jsonl", "w") as handle:
        handle.write(json.dumps({"step": 0, "loss": 1.0}) + "\n")
        handle.write(json.dumps({"step": 5, "loss": 0.5}) + "\n")
        handle.write('{"step": 10, "lo')  # killed mid-write
    report = build_report([run])
    assert {p.name for p in report.files} == {"loss.png", "report.md"}
    _assert_png(run / "report" / "loss.png")
    text = report.markdown.read_text()
    assert "1 unreadable line" in text
    assert "config.yaml is missing" in text
    assert "spectra.jsonl is missing" in text
    assert "step 5" in text


def test_several_runs_are_overlaid_in_one_figure(tmp_path: Path) -> None:
    first = _training_run(tmp_path / "a", "run")
    second = _training_run(tmp_path / "b", "run")
    out = tmp_path / "cmp"
    report = build_report([first, second], out)
    text = report.markdown.read_text()
    assert "| a-run |" in text and "| b-run |" in text
    assert (out / "a-run-alignment.png").exists() and (out / "b-run-alignment.png").exists()
    _assert_png(out / "loss.png")


def test_alignment_epochs_can_be_chosen(tmp_path: Path) -> None:
    run = _training_run(tmp_path, epochs=4)
    report = build_report([run], alignment_epochs=[1])
    assert "eigen-alignment at epochs [1]" in report.markdown.read_text()


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_missing_or_empty_run_dir_is_a_clear_error(tmp_path: Path, make: str) -> None:
    path = tmp_path / "nothing-here"
    if make == "empty":
        path.mkdir()
    with pytest.raises(NocollapseError, match="nothing-here"):
        build_report([path])


def test_cli_report_writes_files_and_refuses_missing_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _simulation_run(tmp_path)
    assert main(["report", str(run), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "report.md").exists()
    assert main(["report", str(tmp_path / "absent")]) == 2
    assert "absent" in capsys.readouterr().err
