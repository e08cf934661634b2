"""A sweep folder under a clumsy or hostile user (issue 31): locks, exit codes, grid bounds,
linked or damaged cells and forged figures, through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from _cli import TINY, assert_refused, run_cli, tree
from nocollapse.cli.main import main
from nocollapse.rundir.lock import RunLock
from nocollapse.runio import CELL_OUTCOME_FILE, SWEEP_BASELINE_FILE, SWEEP_TABLE_FILE
from nocollapse.sweep import OUTCOMES
from nocollapse.sweep.spec import MAX_CELLS

CELL_ARGS = [*TINY, "epochs=1", "monitor.tensorboard=false", "monitor.spectra=false"]
FIRST, SECOND = "weight_decay=0.0005", "weight_decay=0.5"


def _sweep(out: Path, *extra: str) -> list[str]:
    return ["sweep", "--out", str(out), "--grid", "optim.weight_decay=5e-4,0.5", *CELL_ARGS,
            *extra]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reliability-sweep") / "s"
    assert main(_sweep(out)) == 0
    return out


@pytest.fixture
def copy(swept: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(swept, tmp_path / "s", symlinks=True))


def _table(out: Path) -> dict:
    return json.loads((out / SWEEP_TABLE_FILE).read_text())


def test_a_second_sweep_into_the_same_folder_is_refused(
        copy: Path, capsys: pytest.CaptureFixture) -> None:
    lock = RunLock(copy)  # a sweep running there now
    try:
        assert_refused(_sweep(copy), capsys, copy, "in use by another nocollapse run",
                       f"pid {os.getpid()}")
    finally:
        lock.release()
    assert run_cli(_sweep(copy), capsys)[0] == 0  # free again: the rerun goes on


def test_a_failed_cell_exits_1_and_a_damaged_done_cell_is_rebuilt_without_training(
        swept: Path, copy: Path, capsys: pytest.CaptureFixture) -> None:
    # the first cell: its outcome record cut to its name, a bad line in its metrics
    first = copy / "cells" / FIRST
    checkpoint = (first / "checkpoints" / "last.pt").read_bytes()
    (first / CELL_OUTCOME_FILE).write_text(json.dumps({"name": FIRST}))
    with open(first / "metrics.jsonl", "a") as handle:
        handle.write('{"step": "x", "knn_accuracy": 0.5}\n{"step": [1]\n')
    # the second: to be trained from the start while a `train` holds its folder
    second = copy / "cells" / SECOND
    shutil.rmtree(second)
    second.mkdir()
    lock = RunLock(second)
    try:
        code, err = run_cli(_sweep(copy), capsys)
    finally:
        lock.release()
    assert code == 1, err
    assert f"1 of 2 cells failed (first: {SECOND}: ConfigError" in err and "in use" in err
    assert [c["outcome"] for c in _table(copy)["cells"]][1] == "failed"
    rebuilt = json.loads((first / CELL_OUTCOME_FILE).read_text())
    whole = json.loads((swept / "cells" / FIRST / CELL_OUTCOME_FILE).read_text())
    timing = ("seconds", "label_free_seconds", "resumed")
    assert {k: v for k, v in rebuilt.items() if k not in timing} == {
        k: v for k, v in whole.items() if k not in timing}
    assert (first / "checkpoints" / "last.pt").read_bytes() == checkpoint  # not trained again


def test_a_grid_too_large_is_refused_before_its_cells_are_made(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    values = ",".join(str(v) for v in range(10))
    grid = [item for key in ("seed", "optim.lr", "optim.momentum", "optim.weight_decay",
                             "learner.base_tau", "eval.knn_t")
            for item in ("--grid", f"{key}={values}")]
    assert_refused(["sweep", "--out", str(tmp_path / "s"), *grid, *CELL_ARGS], capsys,
                   tmp_path, "10 x 10 x 10 x 10 x 10 x 10 = 1000000 cells",
                   f"more than the {MAX_CELLS}")


def test_a_cell_name_too_long_for_a_folder_is_refused_first(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert_refused(["sweep", "--out", str(tmp_path / "s"), "--grid", f"method={'b' * 300}",
                    *CELL_ARGS], capsys, tmp_path, "characters, more than the 200")


@pytest.mark.parametrize("grid, phrase", [
    ('optim.lr="0.1', "the value '\"0.1' of the axis optim.lr is not valid YAML"),
    ("optim.lr=[1,2", "the value '[1,2' of the axis optim.lr"),
])
def test_an_unreadable_grid_value_names_its_axis(
        tmp_path: Path, capsys: pytest.CaptureFixture, grid: str, phrase: str) -> None:
    err = assert_refused(["sweep", "--out", str(tmp_path / "s"), "--grid", grid, *CELL_ARGS],
                         capsys, tmp_path, phrase)
    assert "'v=" not in err


def test_an_empty_out_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_refused(["sweep", "--out", "", "--grid", "seed=1", *CELL_ARGS], capsys, tmp_path,
                   "--out '' is not a folder name")


def test_a_cell_replaced_by_a_link_is_refused(copy: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    shutil.rmtree(copy / "cells" / SECOND)
    (copy / "cells" / SECOND).symlink_to(copy / "cells" / FIRST)
    assert_refused(_sweep(copy), capsys, copy, f"{SECOND} is a symlink")


@pytest.mark.parametrize("text, phrase", [
    ("axes: [[optim.lr]]\n", "sweep.yaml is damaged"),
    ("base: [1]\naxes: 5\n", "sweep.yaml is damaged"),
    ("axes: 5\n", "sweep.yaml is damaged"),
    ("[1, 2]\n", "sweep.yaml must hold a mapping")])
def test_a_damaged_sweep_yaml_is_refused(copy: Path, capsys: pytest.CaptureFixture,
                                         text: str, phrase: str) -> None:
    (copy / "sweep.yaml").write_text(text)
    assert_refused(_sweep(copy), capsys, copy, phrase)


@pytest.mark.parametrize("forged", ['"FORGED"', "-5e300", '{"a": 1}', "NaN", "true"])
def test_a_forged_baseline_is_measured_again_and_said(
        swept: Path, copy: Path, capsys: pytest.CaptureFixture, forged: str) -> None:
    path = copy / SWEEP_BASELINE_FILE
    (key,) = json.loads(path.read_text())
    path.write_text(f"{{{json.dumps(key)}: {forged}}}")
    code, err = run_cli(_sweep(copy), capsys)
    assert code == 0, err
    assert "not an accuracy in [0, 1]; measuring it again" in err
    assert path.read_bytes() == (swept / SWEEP_BASELINE_FILE).read_bytes()
    assert [c["random_init_knn"] for c in _table(copy)["cells"]] == [
        c["random_init_knn"] for c in _table(swept)["cells"]]


def test_a_baseline_file_that_is_not_an_object_is_measured_again(
        swept: Path, copy: Path, capsys: pytest.CaptureFixture) -> None:
    (copy / SWEEP_BASELINE_FILE).write_text("[1, 2, 3]")
    code, err = run_cli(_sweep(copy), capsys)
    assert code == 0 and "is damaged" in err, err
    assert _table(copy)["cells"] == _table(swept)["cells"]


def test_a_failing_sbatch_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("submitit")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("srun", "sbatch"):
        tool = bin_dir / name
        tool.write_text("#!/bin/sh\necho 'sbatch: error: invalid partition specified' >&2\n"
                        "exit 1\n")
        tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "s"
    code, err = run_cli(_sweep(out, "--launcher", "slurm", "--partition", "nope"), capsys)
    # sbatch's own message, then nocollapse's one line
    assert code == 2 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("nocollapse sweep: error: submitting the job array failed")
    assert "invalid partition specified" in last and "no cell was started" in last
    assert not (out / "cells").exists()
    before = {k: v for k, v in tree(out).items() if not k.startswith("slurm")}
    assert run_cli(_sweep(out, "--launcher", "slurm", "--partition", "nope"), capsys)[0] == 2
    after = {k: v for k, v in tree(out).items() if not k.startswith("slurm")}
    assert after == before  # the rerun measures nothing again (slurm/: submitit's scripts)


# ---- random damage: `report` and the sweep's rerun answer with a result or one line ----

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=8)
DAMAGED_FILES = ["sweep.json", "sweep.yaml", "baseline.json",
                 *(f"cells/{cell}/{name}" for cell in (FIRST, SECOND)
                   for name in ("outcome.json", "summary.json", "metrics.jsonl"))]
DAMAGE = st.lists(st.tuples(st.sampled_from(DAMAGED_FILES),
                            st.sampled_from(["delete", "truncate", "replace", "set", "garbage"]),
                            st.integers(0, 10**6), st.text(max_size=8), JSON_VALUES),
                  min_size=1, max_size=3)


def _damage(root: Path, steps: list[tuple[str, str, int, str, object]]) -> None:
    for name, how, position, key, value in steps:
        path = root / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        if how == "delete":
            path.unlink()
        elif how == "truncate":
            path.write_bytes(data[: position % (len(data) + 1)])
        elif how == "replace":
            path.write_text(json.dumps(value))
        elif how == "garbage":
            path.write_bytes(bytes(position % 256 for _ in range(position % 64)))
        else:  # set a key of the object (of a cell's record in sweep.json)
            try:
                loaded = json.loads(data.splitlines()[0] if data else b"")
            except ValueError:
                continue
            target = loaded
            if isinstance(loaded, dict) and isinstance(loaded.get("cells"), list) \
                    and loaded["cells"] and position % 2:
                target = loaded["cells"][position % len(loaded["cells"])]
            if isinstance(target, dict):
                existing = sorted(target)
                target[existing[position % len(existing)] if existing and position % 3
                       else key] = value
            path.write_text(json.dumps(loaded))


def _one_line_or_done(code: int, err: str, allowed: tuple[int, ...]) -> None:
    assert code in allowed, err
    assert "Traceback" not in err, err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and "error:" in err, err


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=DAMAGE)
@example(steps=[("sweep.json", "set", 3, "outcome", ["learned"])])  # a cell's outcome a list
@example(steps=[("sweep.json", "set", 0, "axes", None)])  # the table's axes gone
def test_report_on_a_randomly_damaged_sweep(
        swept: Path, capsys: pytest.CaptureFixture,
        steps: list[tuple[str, str, int, str, object]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(shutil.copytree(swept, Path(scratch) / "s", symlinks=True))
        _damage(root, steps)
        code, err = run_cli(["report", str(root)], capsys)
        _one_line_or_done(code, err, (0, 2))
        if code == 2 and (root / SWEEP_TABLE_FILE).is_file():
            assert not (root / "report").exists()  # refused: nothing half-written


@settings(max_examples=6, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=DAMAGE)
@example(steps=[("baseline.json", "replace", 0, "", [1, 2, 3])])
@example(steps=[("sweep.yaml", "replace", 0, "", {"axes": 5})])
def test_the_rerun_of_a_randomly_damaged_sweep(
        swept: Path, capsys: pytest.CaptureFixture,
        steps: list[tuple[str, str, int, str, object]]) -> None:
    # the debug launcher runs a cell to redo in this process (no worker to start)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(shutil.copytree(swept, Path(scratch) / "s", symlinks=True))
        _damage(root, steps)
        before = tree(root)
        code, err = run_cli(_sweep(root, "--launcher", "slurm", "--slurm-cluster", "debug"),
                            capsys)
        _one_line_or_done(code, err, (0, 1, 2))
        if code == 2:
            assert tree(root) == before
            return
        table = _table(root)
        assert [c["name"] for c in table["cells"]] == [FIRST, SECOND]
        assert all(c["outcome"] in (*OUTCOMES, "failed") for c in table["cells"])
        assert (code == 1) == any(c["outcome"] == "failed" for c in table["cells"])
        assert run_cli(["report", str(root)], capsys)[0] == 0


def _forged_table(root: Path, table: object) -> Path:
    root.mkdir()
    (root / SWEEP_TABLE_FILE).write_text(json.dumps(table))
    return root


GOOD_CELL = {"name": "a", "axes": {"optim.lr": 0.1}, "outcome": "learned", "knn": 0.5}


@pytest.mark.parametrize("table, phrase", [
    ({"axes": [["optim.lr", list(range(100_000))], ["seed", [0, 1]]], "cells": [GOOD_CELL]},
     "100000 x 2 = 200000 cells"),
    ({"cells": [GOOD_CELL]}, "its axes are missing"),
    ({"axes": [["optim.lr", [0.1]]], "cells": [GOOD_CELL, 5]}, "cell 1 is a int"),
    ({"axes": [["optim.lr", [0.1]]], "cells": {"a": 1}}, "its cells are not a list"),
    ({"axes": [[5, [0.1]]], "cells": []}, "is not [key, [values]]"),
    ([1, 2], "it holds a list"),
])
def test_report_refuses_a_forged_sweep_table_by_name(
        tmp_path: Path, capsys: pytest.CaptureFixture, table: object, phrase: str) -> None:
    root = _forged_table(tmp_path / "s", table)
    assert_refused(["report", str(root)], capsys, tmp_path, "sweep.json is damaged", phrase)


def test_report_reads_wrong_typed_fields_as_missing(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cells = [{**GOOD_CELL, "outcome": ["learned"], "knn": "high", "axes": {"optim.lr": 0.1}},
             {"name": {"x": 1}, "axes": [0.2], "rankme": {}, "warning_step": [3]},
             {**GOOD_CELL, "axes": {"optim.lr": 0.3}, "sigma2_est": -5.0, "tau_est": 1e308}]
    root = _forged_table(tmp_path / "s", {
        "axes": [["optim.lr", [0.1, 0.2, 0.3]]], "cells": cells,
        "spearman_with_knn": {"rankme": [1, 2], "lidar": {"rho": "x", "cells": "many"}}})
    code, err = run_cli(["report", str(root)], capsys)
    assert code == 0, err
    markdown = (root / "report" / "sweep_report.md").read_text()
    assert "| 0.1 | None | - |" in markdown  # the outcome list and the k-NN text: missing
    assert "- lidar: n/a (0 cells)" in markdown and "rankme: " not in markdown
