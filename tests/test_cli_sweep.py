"""``nocollapse sweep`` through the real CLI: refusals, a 2-worker sweep, resume, Slurm path."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from _cli import TINY, assert_refused, overrides, run_cli, tree
from nocollapse.runio import CELL_OUTCOME_FILE, SWEEP_CSV_FILE, SWEEP_TABLE_FILE
from nocollapse.sweep import OUTCOMES
from nocollapse.sweep.run import TIMING_KEYS
from nocollapse.sweep.spec import cores

# two epochs of 4 steps: a killed cell has a checkpoint to resume from
CELL_ARGS = [*TINY, "epochs=2", "monitor.tensorboard=false", "monitor.spectra=false"]
GRID = ["--grid", "optim.weight_decay=5e-4,0.5"]


def _sweep(out: Path, *extra: str) -> list[str]:
    return ["sweep", "--out", str(out), *GRID, *CELL_ARGS, *extra]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-cell sweep run with the local launcher and 2 workers."""
    from nocollapse.cli.main import main

    out = tmp_path_factory.mktemp("sweep") / "wd"
    workers = "2" if cores() >= 2 else "1"
    assert main(_sweep(out, "--workers", workers)) == 0
    return out


@pytest.mark.parametrize("extra, phrase", [
    (["--grid", "optim.wd=1,2"], "unknown config key 'optim.wd'"),
    (["--grid", "optim.lr=fast,0.1"], "optim.lr='fast' is not a valid float"),
    (["--grid", "optim.lr="], "empty value"),
    (["--grid", "optim.lr=0.1,,0.2"], "empty value"),
    (["--grid", "optim.weight_decay=-1"], "optim.weight_decay"),
    (["--grid", "out=a,b"], "out cannot be an axis"),
    (["--workers", "64", "device.threads=1"], "more than the"),
    (["--launcher", "pbs"], "--launcher 'pbs'"),
])
def test_a_bad_cell_is_refused_before_anything_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture, extra: list[str], phrase: str) -> None:
    if "--workers" in extra and cores() >= 64:
        pytest.skip("this machine has 64 cores")
    args = ["sweep", "--out", str(tmp_path / "s"), "--grid", "epochs=1",
            *overrides(CELL_ARGS, *extra)]  # a key given twice is refused
    assert_refused(args, capsys, tmp_path, phrase)


def test_an_out_dir_under_a_file_is_refused(tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "file").write_text("x")
    assert_refused(_sweep(tmp_path / "file" / "s"), capsys, tmp_path, "which is a file")


def test_without_submitit_the_slurm_launcher_says_how_to_install(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    assert_refused(_sweep(tmp_path / "s", "--launcher", "slurm"), capsys, tmp_path,
                   "pip install 'nocollapse[slurm]'")


def test_the_sweep_writes_a_run_directory_and_an_outcome_per_cell(finished: Path) -> None:
    table = json.loads((finished / SWEEP_TABLE_FILE).read_text())
    names = [cell["name"] for cell in table["cells"]]
    assert names == ["weight_decay=0.0005", "weight_decay=0.5"]
    for cell in table["cells"]:
        run_dir = finished / "cells" / cell["name"]
        assert (run_dir / "checkpoints" / "last.pt").is_file()  # an ordinary run directory
        assert cell["outcome"] in OUTCOMES
        assert 0.0 <= cell["knn"] <= 1.0 and 0.0 <= cell["random_init_knn"] <= 1.0
        assert cell["rankme"] >= 1.0 and cell["lidar"] >= 1.0
        assert cell["axes"]["optim.weight_decay"] in (5e-4, 0.5)
        config = (run_dir / "config.yaml").read_text()
        assert f"weight_decay: {cell['axes']['optim.weight_decay']}" in config
    rows = (finished / SWEEP_CSV_FILE).read_text().splitlines()
    assert rows[0].startswith("optim.weight_decay,name,outcome,knn") and len(rows) == 3
    assert set(table["spearman_with_knn"]) >= {"rankme", "alpha_req", "lidar"}


def test_a_rerun_skips_finished_cells_byte_for_byte(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    before = tree(out)
    code, _ = run_cli(_sweep(out), capsys)
    assert code == 0
    assert tree(out) == before  # cells, spec, baseline and the rewritten table: unchanged


def test_a_rerun_reads_a_finished_cell_only_when_its_record_is_from_an_older_version(
        finished: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nocollapse.sweep import cell as cell_module
    from nocollapse.sweep.outcome import RUN_DIR_FIGURES, read_cell

    run_dir = tmp_path / "cell"
    shutil.copytree(finished / "cells" / "weight_decay=0.5", run_dir)
    assert set(read_cell(run_dir)) == RUN_DIR_FIGURES  # the list names what read_cell fills
    record = json.loads((run_dir / CELL_OUTCOME_FILE).read_text())
    assert record.keys() >= RUN_DIR_FIGURES
    config = {**yaml.safe_load((run_dir / "config.yaml").read_text()), "out": str(run_dir)}
    reads: list[Path] = []
    monkeypatch.setattr(cell_module, "read_cell", lambda path: reads.append(path) or {})
    current = cell_module.run_cell(config, "weight_decay=0.5")
    assert reads == [] and current["ran"] is False and current["knn"] == record["knn"]
    del record["scale_est"]  # as a record written before the data's scale was logged
    (run_dir / CELL_OUTCOME_FILE).write_text(json.dumps(record))
    cell_module.run_cell(config, "weight_decay=0.5")
    assert reads == [run_dir]


def test_a_changed_grid_is_refused_naming_the_difference(
        finished: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["sweep", "--out", str(finished), "--grid", "optim.weight_decay=5e-4,0.05",
            *CELL_ARGS]
    assert_refused(args, capsys, finished, "axis optim.weight_decay=[0.0005, 0.05]",
                   "the sweep has [0.0005, 0.5]")
    assert_refused([*_sweep(finished), "optim.lr=0.2"], capsys, finished, "optim.lr=0.2")


def test_a_killed_cell_resumes_to_the_uninterrupted_result(
        finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    from nocollapse.train import loop, train
    from nocollapse.train.config import TrainConfig

    out = tmp_path / "killed"
    shutil.copytree(finished, out)
    name = "weight_decay=0.5"
    cell = out / "cells" / name
    config = TrainConfig.from_dict({**yaml.safe_load((cell / "config.yaml").read_text()),
                                    "out": str(cell)})
    shutil.rmtree(cell)
    end_epoch = loop._Run._end_epoch

    def dies_after_the_first_checkpoint(self: loop._Run, writer: object) -> None:
        end_epoch(self, writer)  # type: ignore[arg-type]
        if self.state.epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop._Run, "_end_epoch", dies_after_the_first_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train(config, quiet=True)
    monkeypatch.undo()
    assert torch.load(cell / "checkpoints" / "last.pt", weights_only=True)["step"] == 4
    code, err = run_cli(_sweep(out), capsys)
    assert code == 0, err
    resumed = json.loads((cell / CELL_OUTCOME_FILE).read_text())
    whole = json.loads((finished / "cells" / name / CELL_OUTCOME_FILE).read_text())
    assert resumed["resumed"] is True and whole["resumed"] is False
    assert _without_timing(resumed) == _without_timing(whole)
    # the exact resume: the same weights as the uninterrupted cell, bit for bit
    a = torch.load(cell / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(finished / "cells" / name / "checkpoints" / "last.pt",
                   weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in b)
    # the table equals the uninterrupted sweep's, timing aside
    tables = [json.loads((d / SWEEP_TABLE_FILE).read_text())["cells"] for d in (out, finished)]
    assert [_without_timing(c) for c in tables[0]] == [_without_timing(c) for c in tables[1]]


def _without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING_KEYS}


def test_the_submitit_local_executor_runs_the_job_array(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("submitit")
    out = tmp_path / "slurm-sweep"
    sweep_file = tmp_path / "sweep.yaml"  # the axes from a sweep file this time
    sweep_file.write_text("base:\n  optim: {lr: 0.05}\naxes:\n  optim.weight_decay: [5.0e-4]\n")
    args = ["sweep", "--out", str(out), "--file", str(sweep_file), *CELL_ARGS,
            "--launcher", "slurm", "--slurm-cluster", "local", "--time", "5"]
    code, err = run_cli(args, capsys)
    assert code == 0, err
    table = json.loads((out / SWEEP_TABLE_FILE).read_text())
    assert [c["outcome"] in OUTCOMES for c in table["cells"]] == [True]
    logs = list((out / "slurm").rglob("*_log.out"))
    assert logs, "submitit's task logs belong under SWEEP_DIR/slurm"
    assert (out / "cells" / "weight_decay=0.0005" / CELL_OUTCOME_FILE).is_file()
    assert torch.load(out / "cells" / "weight_decay=0.0005" / "checkpoints" / "last.pt",
                      weights_only=True)["finished"] is True
    assert set(TIMING_KEYS) <= set(table["cells"][0])
    config = (out / "cells" / "weight_decay=0.0005" / "config.yaml").read_text()
    assert "lr: 0.05" in config  # the file's base reached the cell


@pytest.mark.parametrize("text, phrase", [
    ("axes:\n  optim.lr: []\n", "axis optim.lr must be a non-empty list"),
    ("base: {}\naxis:\n  optim.lr: [0.1]\n", "unknown top-level key(s) ['axis']"),
    ("axes:\n  optim.lr: [0.1]\nbase:\n  optim: {lrr: 1}\n", "unknown config key 'optim.lrr'"),
])
def test_a_bad_sweep_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture,
                                     text: str, phrase: str) -> None:
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(text)
    assert_refused(["sweep", "--out", str(tmp_path / "s"), "--file", str(sweep_file),
                    *CELL_ARGS], capsys, tmp_path, phrase)


def test_progress_lines_count_done_cells_and_estimate_the_rest() -> None:
    import io

    from nocollapse.sweep.run import Progress

    stream = io.StringIO()
    progress = Progress(total=6, done=1, workers=2, stream=stream)  # one skipped as done
    progress.cell_done({"name": "a", "outcome": "learned", "knn": 0.81234, "seconds": 60.0})
    progress.cell_done({"name": "b", "outcome": "failed", "seconds": None})
    lines = stream.getvalue().splitlines()
    # 4 cells left, 2 at a time, 60 s each: 2 rounds of 60 s
    assert lines[0] == "[2/6] a: learned, k-NN 0.812, 60 s; ETA 2 min"
    assert lines[1] == "[3/6] b: failed, k-NN -, -; ETA 2 min"
