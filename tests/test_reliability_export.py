"""``nocollapse export`` never writes into a run's own files or over a file without --force,
and its weights + JSON pair is replaced whole or not at all (issue 31)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

import nocollapse
from _cli import assert_refused, copy_run, finished_run, run_cli, tree
from nocollapse.cli.main import main
from nocollapse.models.export import BackboneFileError, description_path
from nocollapse.rundir.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return finished_run(tmp_path_factory, "export-safety")


@pytest.mark.parametrize("fmt, target", [
    ("torchscript", "checkpoints/last.pt"),
    ("safetensors", "checkpoints/new.safetensors"),
    ("safetensors", "summary.safetensors"),
    ("torchscript", "link/last.pt"),  # a link on the way into checkpoints/
])
def test_an_export_into_the_runs_own_files_is_refused(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture, fmt: str,
        target: str) -> None:
    run = copy_run(trained, tmp_path)
    (tmp_path / "link").symlink_to(run / "checkpoints")
    out = (tmp_path if target.startswith("link") else run) / target
    for force in ([], ["--force"]):  # --force replaces an export, never a run's file
        assert_refused(["export", str(run), "--format", fmt, "--out", str(out), *force],
                       capsys, tmp_path, "a nocollapse run or sweep directory", "export/")


def test_an_export_into_another_run_or_a_sweep_is_refused(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(trained, tmp_path)
    other = Path(str(run) + "-other")
    other.mkdir()
    (other / "config.yaml").write_text("seed: 0\n")
    (other / "metrics.jsonl").write_text("")
    sweep = tmp_path / "sweep"
    (sweep / "cells").mkdir(parents=True)
    (sweep / "sweep.yaml").write_text("axes: []\n")
    for out in (other / "b.safetensors", sweep / "b.safetensors",
                sweep / "cells" / "b.safetensors"):
        assert_refused(["export", str(run), "--out", str(out)], capsys, tmp_path,
                       "a nocollapse run or sweep directory")


def test_an_existing_export_is_replaced_only_with_force(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(trained, tmp_path)
    code, err = run_cli(["export", str(run)], capsys)  # RUN/export/ is export's own folder
    assert code == 0, err
    weights = run / "export" / "backbone.safetensors"
    assert_refused(["export", str(run)], capsys, tmp_path, "already exists", "--force")
    other = tmp_path / "mine.safetensors"
    other.write_text("a user's file")
    assert_refused(["export", str(run), "--out", str(other)], capsys, tmp_path,
                   "already exists")
    description_path(other).write_text("{}")  # the JSON alone is in the way too
    other.unlink()
    assert_refused(["export", str(run), "--out", str(other)], capsys, tmp_path,
                   "already exists")
    code, err = run_cli(["export", str(run), "--force"], capsys)
    assert code == 0, err
    nocollapse.load_backbone(weights)


def test_a_failed_rename_leaves_the_previous_pair_whole(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    run = copy_run(trained, tmp_path)
    out = tmp_path / "pair" / "b.safetensors"
    assert run_cli(["export", str(run), "--out", str(out)], capsys)[0] == 0
    real = os.replace

    def refuses_the_json(src: str, dst: str | os.PathLike[str]) -> None:
        if str(dst).endswith(".json"):  # as an immutable description would
            raise PermissionError(1, "Operation not permitted", str(dst))
        real(src, dst)

    monkeypatch.setattr(os, "replace", refuses_the_json)
    assert_refused(["export", str(run), "--out", str(out), "--target", "--force"], capsys,
                   tmp_path, "no separate target network")  # (checks first: nothing written)
    assert_refused(["export", str(run), "--out", str(out), "--force"], capsys, tmp_path,
                   "Operation not permitted", "left as they were")
    monkeypatch.undo()
    nocollapse.load_backbone(out)  # the pair still belongs together


def test_a_checkpoint_with_nan_weights_is_not_exported(
        trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = copy_run(trained, tmp_path)
    state = load_checkpoint(run)
    name = next(k for k in state["model"] if k.startswith("backbone.") and "weight" in k)
    state["model"][name] = torch.full_like(state["model"][name], float("nan"))
    save_checkpoint(checkpoint_path(run), state)
    before = tree(run)
    assert_refused(["export", str(run), "--out", str(tmp_path / "n.safetensors")], capsys,
                   tmp_path, "not finite", "nothing was exported")
    assert tree(run) == before


# ---- load_backbone: sizes bounded from the JSON and the header before anything is read ----

@pytest.fixture(scope="module")
def exported(trained: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("exported") / "b.safetensors"
    assert main(["export", str(trained), "--out", str(out)]) == 0
    return out


def _resigned(exported: Path, tmp_path: Path, change_description: Any = None,
              change_state: Any = None) -> Path:
    """A pair that vouches for itself (as anyone can write with save_backbone), with the
    description or the weights changed first."""
    import json

    from nocollapse.models.export import save_backbone

    body = json.loads(description_path(exported).read_text())
    body.pop("weights")
    if change_description:
        change_description(body)
    backbone = nocollapse.load_backbone(exported)
    state = {k: v.clone() for k, v in backbone.state_dict().items()}
    if change_state:
        change_state(state)
    backbone.state_dict = lambda: state  # type: ignore[method-assign,assignment,return-value]
    path = tmp_path / "forged.safetensors"
    save_backbone(backbone, body, path)
    return path


def _set_channels(body: dict) -> None:
    body["architecture"]["args"]["in_channels"] = 10**9


def _as_int64(state: dict) -> None:
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].to(torch.int64)


def _nan(state: dict) -> None:
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = torch.full_like(state[name], float("nan"))


@pytest.mark.parametrize("change_description, change_state, phrase", [
    (_set_channels, None, "in_channels in [1, 64]"),
    (None, _as_int64, "is I64"),
    (None, _nan, "not finite"),
])
def test_a_self_consistent_forged_pair_is_refused(
        exported: Path, tmp_path: Path, change_description: Any, change_state: Any,
        phrase: str) -> None:
    path = _resigned(exported, tmp_path, change_description, change_state)
    with pytest.raises(BackboneFileError, match=re.escape(phrase)):
        nocollapse.load_backbone(path)


def test_huge_or_deep_files_are_refused_before_they_are_read(
        exported: Path, tmp_path: Path) -> None:
    import json

    weights = tmp_path / exported.name  # the name its description names
    shutil.copyfile(exported, weights)
    description_path(weights).write_text(description_path(exported).read_text())
    with open(weights, "r+b") as handle:
        handle.truncate(8 << 30)  # 8 GB, sparse: nothing is written to disk
    with pytest.raises(BackboneFileError, match="bytes, more than small_convnet"):
        nocollapse.load_backbone(weights)
    with open(description_path(weights), "r+b") as handle:
        handle.truncate(8 << 30)
    with pytest.raises(BackboneFileError, match="a description is at most"):
        nocollapse.load_backbone(weights)
    description_path(weights).write_text("[" * 200_000 + "]" * 200_000)
    with pytest.raises(BackboneFileError, match="RecursionError"):
        nocollapse.load_backbone(weights)
    assert json.loads(description_path(exported).read_text())  # the original is untouched
