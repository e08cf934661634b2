"""Plugins: an installed package's ``nocollapse.plugins`` entry point registers a loss, a
predictor and a data set, read once at the first registry read or when the CLI starts;
a broken plugin is a named error (exit 2 from the CLI), never a traceback.

Each test installs a tiny distribution for real: a ``*.dist-info`` folder with an
``entry_points.txt`` and the plugin's module, in a temporary folder put on ``sys.path``,
which ``importlib.metadata`` finds as it finds any installed package.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nocollapse import plugins
from nocollapse.cli.main import main
from nocollapse.data import DATASETS, load_dataset
from nocollapse.losses import LOSSES
from nocollapse.methods import SiameseLearner, learner_config
from nocollapse.plugins import PluginError, load_plugins
from nocollapse.predictors import PREDICTORS

SRC = Path(__file__).resolve().parents[1] / "src"

PLUGIN = '''
import torch
from torch import nn

from nocollapse.data import DatasetEntry, ImageDataset, register_dataset
from nocollapse.losses import register_loss
from nocollapse.predictors import PredictorEntry, register_predictor


class Half(nn.Module):
    def forward(self, z):
        return z / 2


def l1(d):
    return (d.p - d.target).abs().sum(dim=-1).mean()


def images(root, split):
    data = torch.full((8, 1, 8, 8), 5, dtype=torch.uint8)
    return ImageDataset("plugin-toy", data, torch.arange(8) % 2, ["a", "b"])


def register():
    register_loss("plugin-l1", l1, "mean ||p - z||_1")
    register_predictor("plugin-half", PredictorEntry(lambda dim, hidden_dim: Half(), "p = z / 2"))
    register_dataset("plugin-toy", DatasetEntry(images, "8x1", "eight constant images"))
'''
REGISTERED = ((LOSSES, "plugin-l1"), (PREDICTORS, "plugin-half"), (DATASETS, "plugin-toy"),
              (LOSSES, "plugin-module-loss"))


def install(root: Path, dist: str, entry: str, modules: dict[str, str]) -> None:
    """A distribution ``dist`` 0.1 with the plugin entry point ``entry`` and ``modules``."""
    for name, source in modules.items():
        (root / f"{name}.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"  # as a wheel names it
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{plugins.GROUP}]\n{entry}\n")


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder of installed packages on ``sys.path``, and a process that has not read
    its plugins yet; afterwards the plugins' modules and registrations are gone."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_STATE", plugins._State())
    before = set(sys.modules)
    try:
        yield tmp_path
    finally:
        for registry, name in REGISTERED:
            registry.pop(name, None)
        for name in set(sys.modules) - before:
            if name.startswith("tiny_"):
                del sys.modules[name]


def test_the_first_registry_read_runs_the_plugin_once(site: Path) -> None:
    install(site, "tiny-plugin", "tiny = tiny_plugin:register", {"tiny_plugin": PLUGIN})
    assert not plugins._STATE.loaded
    assert "plugin-l1" in LOSSES  # the first read ran it
    assert "plugin-half" in PREDICTORS and "plugin-toy" in DATASETS
    assert load_plugins() == ["tiny"]  # once: a second call runs nothing again
    assert int(load_dataset("plugin-toy").images.max()) == 5


def test_a_plugin_loss_trains_a_step(site: Path) -> None:
    install(site, "tiny-plugin", "tiny = tiny_plugin:register", {"tiny_plugin": PLUGIN})
    config = learner_config("byol", loss="plugin-l1", proj_hidden_dim=8, proj_dim=4,
                            pred_hidden_dim=8)
    torch.manual_seed(0)
    learner = SiameseLearner(config, in_channels=1, image_size=8)
    before = [p.detach().clone() for p in learner.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD([p for p in learner.parameters() if p.requires_grad], lr=0.1)
    out = learner(torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8))
    # byol sums the two directions: the plugin's L1 of each prediction to the other target
    assert out.t1 is not None and out.t2 is not None
    expected = ((out.p1 - out.t2).abs().sum(-1).mean() + (out.p2 - out.t1).abs().sum(-1).mean())
    torch.testing.assert_close(out.loss.detach(), expected.detach())
    optimizer.zero_grad()
    out.loss.backward()
    optimizer.step()
    after = [p.detach() for p in learner.parameters() if p.requires_grad]
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_a_plugin_may_be_a_module_that_registers_on_import(site: Path) -> None:
    source = ("from nocollapse.losses import register_loss\n"
              "register_loss('plugin-module-loss', lambda d: (d.p - d.target).pow(2).mean(),"
              " 'mean (p - z)^2')\n")
    install(site, "tiny-module", "mod = tiny_module", {"tiny_module": source})
    assert load_plugins() == ["mod"]
    assert LOSSES["plugin-module-loss"].help == "mean (p - z)^2"


@pytest.mark.parametrize(("entry", "modules", "says"), [
    ("broken = tiny_missing:register", {}, "ModuleNotFoundError: No module named 'tiny_missing'"),
    ("broken = tiny_twice:register",
     {"tiny_twice": "from nocollapse.losses import register_loss\n"
                    "def register():\n    register_loss('l2', lambda d: d.p.sum(), 'again')\n"},
     "ConfigError: loss 'l2' is already registered"),
    ("broken = tiny_value:NUMBER", {"tiny_value": "NUMBER = 3\n"},
     "tiny_value:NUMBER is a int, not a function or module"),
])
def test_a_broken_plugin_is_named_once_and_the_others_still_register(
        site: Path, entry: str, modules: dict[str, str], says: str) -> None:
    install(site, "tiny-plugin", "tiny = tiny_plugin:register", {"tiny_plugin": PLUGIN})
    install(site, "tiny-broken", entry, modules)
    with pytest.raises(PluginError) as caught:
        _ = "l2" in LOSSES
    message = str(caught.value)
    assert "plugin 'broken'" in message and "from tiny-broken 0.1" in message
    assert says in message
    # once: the registries work on, with the plugin that did load
    assert "plugin-l1" in LOSSES and LOSSES["l2"].help.startswith("tian2021")


def test_the_cli_reads_plugins_at_start_and_exits_2_on_a_broken_one(
        site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    install(site, "tiny-broken", "broken = tiny_missing:register", {})
    assert main(["simulate", "--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nocollapse: error: plugin 'broken' (tiny_missing:register")
    assert "Traceback" not in err


@pytest.mark.parametrize(("body", "says"), [
    ("    import sys\n    sys.exit(0)\n", "called sys.exit(0) while loading"),
    ("    raise SystemExit('bye')\n", "called sys.exit('bye') while loading"),
    ("    raise KeyboardInterrupt\n", "failed: KeyboardInterrupt"),
])
def test_a_plugin_that_exits_is_named_and_the_command_exits_2(
        site: Path, capsys: pytest.CaptureFixture[str], body: str, says: str) -> None:
    install(site, "tiny-exit", "leaving = tiny_exit:register",
            {"tiny_exit": f"def register():\n{body}"})
    assert main(["simulate", "--model", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nocollapse: error: plugin 'leaving' (tiny_exit:register")
    assert says in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_an_installed_plugin_shows_in_the_real_command_line(tmp_path: Path) -> None:
    install(tmp_path, "tiny-plugin", "tiny = tiny_plugin:register", {"tiny_plugin": PLUGIN})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(SRC)])}
    listed = subprocess.run([sys.executable, "-m", "nocollapse", "train", "--help"],
                            capture_output=True, text=True, env=env, check=False)
    assert listed.returncode == 0, listed.stderr
    assert "plugin-l1" in listed.stdout and "plugin-half" in listed.stdout
    install(tmp_path, "tiny-broken", "broken = tiny_missing:register", {})
    failed = subprocess.run([sys.executable, "-m", "nocollapse", "train", "--help"],
                            capture_output=True, text=True, env=env, check=False)
    assert failed.returncode == 2
    assert "plugin 'broken'" in failed.stderr and "Traceback" not in failed.stderr
