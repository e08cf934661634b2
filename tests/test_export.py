"""``nocollapse export`` and ``nocollapse.load_backbone``: the exported backbone gives the run's
features, the two files vouch for each other, and bad input is refused before writing."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest
import torch

import nocollapse
from _cli import TINY, assert_refused, run_cli
from nocollapse.data import PRESETS, load_dataset, normalize, preset_for_images
from nocollapse.models.export import BackboneFileError, description_path
from nocollapse.rundir.checkpoint import load_checkpoint
from nocollapse.train import setup
from nocollapse.train.config import TrainConfig


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A SimSiam run (no separate target) and a BYOL run (EMA target), one tiny epoch each."""
    root = tmp_path_factory.mktemp("export-runs")
    found = {}
    for method in ("simsiam", "byol"):
        out = root / method
        code = nocollapse.cli.main.main(["train", "--method", method, "--out", str(out), *TINY,
                                         "epochs=1", "eval.baselines=[]"])
        assert code == 0
        found[method] = out
    return found


def _run_features(run_dir: Path, target: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised test batch, the run's own backbone features of it), as evaluation does."""
    saved = load_checkpoint(run_dir)
    config = TrainConfig.from_dict(saved["config"])
    learner = setup.default_learner(config, 1, 8)
    learner.load_state_dict(saved["model"])
    learner.eval()
    images = load_dataset("digits", None, "test").images[:64]
    batch = normalize(images, preset_for_images(images))
    with torch.no_grad():
        module = learner.target_net[0] if target else learner.backbone
        return batch, module(batch)


def _assert_same_features(exported: torch.Tensor, expected: torch.Tensor) -> float:
    # The same float32 weights and the same operations on the same input: the results are
    # equal unless a kernel reorders a sum. A reordered sum of n float32 terms moves by at
    # most ~n * eps * max|term|; 64 eps of the largest feature covers the 3x3 x 128-channel
    # sums of the last block many times over, while a wrong weight moves features by far more.
    assert exported.shape == expected.shape
    difference = float((exported - expected).abs().max())
    assert difference <= 64 * torch.finfo(torch.float32).eps * float(expected.abs().max())
    return difference


def test_exported_backbone_gives_the_runs_features(runs: dict[str, Path],
                                                   capsys: pytest.CaptureFixture) -> None:
    run_dir = runs["simsiam"]
    code, _ = run_cli(["export", str(run_dir)], capsys)
    assert code == 0
    path = run_dir / "export" / "backbone.safetensors"
    backbone = nocollapse.load_backbone(path)
    assert type(backbone).__module__.startswith("nocollapse.models")  # plain nn.Module
    assert not backbone.training
    batch, expected = _run_features(run_dir)
    with torch.no_grad():
        _assert_same_features(backbone(batch), expected)
    description = json.loads(description_path(path).read_text())
    assert description["architecture"] == {"name": "small_convnet_4x4",
                                           "args": {"in_channels": 1, "image_size": 8}}
    assert description["input"]["size"] == 8 and description["input"]["channels"] == 1
    assert description["normalization"]["preset"] == "8x1"
    assert description["output"]["features"] == expected.shape[1]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert description["evaluation"] == summary["evaluation"]
    assert description["source"]["network"] == "online"


def test_the_loaded_backbone_carries_its_input_contract(runs: dict[str, Path],
                                                       capsys: pytest.CaptureFixture) -> None:
    from nocollapse.models import BackboneInputError

    run_dir, out = runs["simsiam"], runs["simsiam"].parent / "contract.safetensors"
    assert run_cli(["export", str(run_dir), "--out", str(out)], capsys)[0] == 0
    backbone = nocollapse.load_backbone(out)
    preset = PRESETS["8x1"]
    assert (backbone.input_size, backbone.in_channels) == (8, 1)
    assert backbone.mean == tuple(preset["mean"]) and backbone.std == tuple(preset["std"])
    # the digits' 0..16 values and how they became uint8 (data/digits.py), in the JSON too
    assert "rint(x * 255 / 16)" in backbone.pixels
    assert json.loads(description_path(out).read_text())["input"]["source_pixels"] == \
        backbone.pixels
    with pytest.raises(BackboneInputError, match=r"\(batch, 1, 8, 8\).*\(4, 1, 28, 28\)"):
        backbone(torch.zeros(4, 1, 28, 28))  # a Fashion-MNIST-sized image: refused by name
    with pytest.raises(BackboneInputError, match="uint8"):
        backbone(torch.zeros(4, 1, 8, 8, dtype=torch.uint8))
    # raw=True: uint8 images in, the same features as the normalised float input
    images = load_dataset("digits", None, "test").images[:64]
    raw = nocollapse.load_backbone(out, raw=True)
    with torch.no_grad():
        _assert_same_features(raw(images), backbone(normalize(images, "8x1")))


def test_target_and_torchscript_exports_give_their_networks_features(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = runs["byol"]
    target_file = tmp_path / "target.safetensors"
    assert run_cli(["export", str(run_dir), "--target", "--out", str(target_file)], capsys)[0] == 0
    batch, target_features = _run_features(run_dir, target=True)
    _, online_features = _run_features(run_dir)
    assert not torch.equal(target_features, online_features)  # the EMA lags the online net
    with torch.no_grad():
        _assert_same_features(nocollapse.load_backbone(target_file)(batch), target_features)
    scripted = tmp_path / "online.pt"
    assert run_cli(["export", str(run_dir), "--format", "torchscript", "--out", str(scripted)],
                   capsys)[0] == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated
        module = torch.jit.load(str(scripted))
    with torch.no_grad():
        _assert_same_features(module(batch), online_features)
    with pytest.raises(BackboneFileError, match=r"TorchScript archive: load it with torch\.jit"):
        nocollapse.load_backbone(scripted)


def test_a_missing_damaged_or_mismatched_description_is_refused(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    for path, method in ((first, "simsiam"), (second, "byol")):
        assert run_cli(["export", str(runs[method]), "--out", str(path)], capsys)[0] == 0
    original = description_path(first).read_text()

    description_path(first).unlink()
    with pytest.raises(BackboneFileError, match="no description beside it"):
        nocollapse.load_backbone(first)
    description_path(first).write_text(original[:-20])
    with pytest.raises(BackboneFileError, match="not valid JSON"):
        nocollapse.load_backbone(first)
    edited = json.loads(original)
    edited["normalization"]["mean"] = [0.5]  # a consistent-looking but wrong description
    description_path(first).write_text(json.dumps(edited))
    with pytest.raises(BackboneFileError, match="was changed after export"):
        nocollapse.load_backbone(first)
    description_path(first).write_text(original)
    nocollapse.load_backbone(first)  # restored: loads again

    shutil.copyfile(second, first)  # another run's weights under this name
    with pytest.raises(BackboneFileError, match="does not match its description"):
        nocollapse.load_backbone(first)
    with pytest.raises(BackboneFileError, match=r"describes a\.safetensors, not"):
        shutil.copyfile(description_path(first), tmp_path / "c.safetensors.json")
        shutil.copyfile(second, tmp_path / "c.safetensors")
        nocollapse.load_backbone(tmp_path / "c.safetensors")
    with pytest.raises(BackboneFileError, match="no exported backbone"):
        nocollapse.load_backbone(tmp_path / "none.safetensors")


def test_bad_export_requests_are_refused_and_write_nothing(
        runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run_dir = runs["simsiam"]
    shutil.rmtree(run_dir / "export", ignore_errors=True)
    assert_refused(["export", str(run_dir), "--format", "onnx"], capsys, run_dir,
                   "--format", "safetensors")
    assert_refused(["export", str(run_dir), "--out", str(run_dir / "w.json")], capsys, run_dir,
                   "must end in .safetensors")
    assert_refused(["export", str(run_dir), "--target"], capsys, run_dir,
                   "no separate target network", "without --target")
    assert_refused(["export", str(tmp_path / "nothing")], capsys, tmp_path, "no checkpoint")
    (run_dir / "export.safetensors").mkdir()
    assert_refused(["export", str(run_dir), "--out", str(run_dir / "export.safetensors")],
                   capsys, run_dir, "is a folder")
