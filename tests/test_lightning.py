"""``nocollapse.lightning.CollapseCallback`` in a real ``lightning.pytorch.Trainer`` on CPU.

``LightlySimSiam`` below is lightly 1.6's SimSiam example as lightly writes it (backbone,
``projection_head``, ``prediction_head``, ``criterion``, ``z`` detached in ``forward``,
``(x0, x1) = batch[0]``, a ``training_step`` that returns only the loss; lightly's heads
written out, no lightly import) on 512 of scikit-learn's 8x8 digits, 48 steps: the
callback reads it through forward hooks, with no change to the module. Measured here
(lr 0.5, every 2 steps, patience 3): the healthy run's effective rank stays above 0.39
of its highest; without the predictor or without the stop-gradient it falls below a
quarter of it and the monitor warns (steps 24-26 of 48), naming that cause.
examples/own_loop.py's ``SimSiam`` returns the views instead (the other way in).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import warnings
from pathlib import Path

import pytest

pytest.importorskip("lightning")

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from nocollapse.cli.main import main
from nocollapse.errors import ConfigError
from nocollapse.lightning import CollapseCallback
from nocollapse.runio import read_metrics

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own_loop.py"
_spec = importlib.util.spec_from_file_location("own_loop", EXAMPLE)
assert _spec is not None and _spec.loader is not None
own_loop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(own_loop)
SimSiam = own_loop.SimSiam

EPOCHS = 6
STEPS = EPOCHS * own_loop.IMAGES // own_loop.BATCH
QUIET = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
         "enable_model_summary": False}


class LightlySimSiam(pl.LightningModule):
    """lightly's SimSiam example, unedited but for the two switches that break it."""

    def __init__(self, predictor: bool = True, stop_gradient: bool = True) -> None:
        super().__init__()
        self.backbone = own_loop.backbone()
        # SimSiamProjectionHead(128, 64, 32) and SimSiamPredictionHead(32, 16, 32)
        self.projection_head = own_loop.mlp([128, 64, 64, 32], last_bn=True)
        self.prediction_head = own_loop.mlp([32, 16, 32], last_bn=False) if predictor \
            else nn.Identity()
        self.criterion = own_loop.NegativeCosineSimilarity()
        self.detach = stop_gradient

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(x).flatten(start_dim=1)
        z = self.projection_head(f)
        p = self.prediction_head(z)
        if self.detach:
            z = z.detach()
        return z, p

    def training_step(self, batch: object, batch_idx: int) -> torch.Tensor:
        (x0, x1) = batch[0]  # type: ignore[index]
        z0, p0 = self.forward(x0)
        z1, p1 = self.forward(x1)
        loss = 0.5 * (self.criterion(z0, p1) + self.criterion(z1, p0))
        self.log("train_loss_ssl", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.5, momentum=0.9, weight_decay=5e-4)


class LightlyBatches(torch.utils.data.Dataset):
    """own_loop's two views as lightly's datasets give them: ``([x0, x1], label)``."""

    def __init__(self) -> None:
        self.views = own_loop.TwoViews()

    def __len__(self) -> int:
        return len(self.views)

    def __getitem__(self, i: int) -> tuple[list[torch.Tensor], int]:
        return list(self.views[i]), 0


def lightly_loader() -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(LightlyBatches(), batch_size=own_loop.BATCH,
                                       shuffle=True, drop_last=True,
                                       generator=torch.Generator().manual_seed(0))


def _fit(tmp_path: Path, name: str, module: object, **options: object
         ) -> tuple[object, CollapseCallback]:
    torch.manual_seed(0)
    return own_loop.lightning_run(tmp_path / name, module, EPOCHS,
                                  logger=CSVLogger(tmp_path / "csv", name=name), **options)


def _lightly_fit(run_dir: Path | None, module: pl.LightningModule, callbacks: list,
                 **trainer: object) -> pl.Trainer:
    torch.manual_seed(0)
    fit = pl.Trainer(**{"max_epochs": EPOCHS, "logger": False, "log_every_n_steps": 2,
                        "enable_checkpointing": False, **QUIET, **trainer},
                     callbacks=callbacks)
    fit.fit(module, lightly_loader())
    return fit


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("lightning")
    cases = {"healthy": LightlySimSiam(), "no_predictor": LightlySimSiam(predictor=False),
             "no_stop_gradient": LightlySimSiam(stop_gradient=False)}
    for name, module in cases.items():
        _lightly_fit(None, module, [CollapseCallback(root / name, patience=3)],
                     logger=CSVLogger(root / "csv", name=name))
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
    if case == "no_stop_gradient":  # read from the hooked criterion's inputs
        assert "the inputs of the module's criterion carry gradient" in causes


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


class LightlyBYOL(LightlySimSiam):
    """lightly's BYOL example: a momentum copy of backbone and projection head, its
    ``forward_momentum`` detached, ``criterion(p0, z1)``; ``training_step`` returns the loss."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone_momentum = copy.deepcopy(self.backbone).requires_grad_(False)
        self.projection_head_momentum = copy.deepcopy(self.projection_head).requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.prediction_head(self.projection_head(self.backbone(x).flatten(start_dim=1)))

    def forward_momentum(self, x: torch.Tensor) -> torch.Tensor:
        y = self.backbone_momentum(x).flatten(start_dim=1)
        return self.projection_head_momentum(y).detach()

    def training_step(self, batch: object, batch_idx: int) -> torch.Tensor:
        with torch.no_grad():  # update_momentum(..., m=0.99)
            for online, target in ((self.backbone, self.backbone_momentum),
                                   (self.projection_head, self.projection_head_momentum)):
                for p, q in zip(online.parameters(), target.parameters(), strict=True):
                    q.mul_(0.99).add_(p.detach(), alpha=0.01)
        (x0, x1) = batch[0]  # type: ignore[index]
        p0, z0 = self.forward(x0), self.forward_momentum(x0)
        p1, z1 = self.forward(x1), self.forward_momentum(x1)
        return 0.5 * (self.criterion(p0, z1) + self.criterion(p1, z0))


def test_a_lightly_byol_module_is_read_without_edits(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    callback = CollapseCallback(tmp_path / "byol")
    _lightly_fit(None, LightlyBYOL(), [callback], max_steps=8)
    assert [r["step"] for r in read_metrics(tmp_path / "byol")] == [1, 2, 4, 6, 8]
    assert callback.monitor is not None and callback.disabled is None
    context = callback.monitor.core.warning.context
    # the momentum branch's detached targets, read from the criterion's inputs
    assert context["stop_gradient"] is True and context.get("predictor") != "none"


def test_diagnostics_share_the_modules_rows_and_steps_in_the_csv(runs: dict[str, Path]
                                                                ) -> None:
    csv = next((runs["healthy"].parent / "csv" / "healthy").rglob("metrics.csv"))
    lines = [line.split(",") for line in csv.read_text().splitlines()]
    header, rows = lines[0], [dict(zip(lines[0], line, strict=True)) for line in lines[1:]]
    assert {"nocollapse/effective_rank", "nocollapse/collapse_level"} <= set(header)
    ours = [r for r in rows if r["nocollapse/effective_rank"]]
    module = [r for r in rows if r["train_loss_ssl"]]
    # every=2 came from log_every_n_steps=2: one row per Lightning log step, shared
    assert len(ours) == len(module) == STEPS // 2
    assert all(r["train_loss_ssl"] and r["epoch"] for r in ours)
    assert not (runs["healthy"] / "tensorboard").exists()  # the Trainer's loggers have them


def test_early_stopping_and_checkpointing_monitor_a_diagnostic(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="nocollapse/effective_rank",
                            mode="max")
    stopper = EarlyStopping(monitor="nocollapse/effective_rank", mode="max", patience=1,
                            check_on_train_epoch_end=True)
    trainer = _lightly_fit(None, LightlySimSiam(predictor=False),
                           [CollapseCallback(tmp_path / "run"), saver, stopper],
                           enable_checkpointing=True)
    assert "nocollapse/effective_rank" in trainer.callback_metrics
    assert saver.best_model_score is not None and Path(saver.best_model_path).exists()
    # the collapsing run's effective rank falls: the stopper ends the fit early
    assert stopper.stopped_epoch > 0 and trainer.global_step < STEPS


def test_stop_on_collapse_stops_the_trainer_at_the_warning(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    trainer, _ = _fit(tmp_path, "stop", SimSiam(predictor=False), stop_on_collapse=True)
    warning = _warnings(tmp_path / "stop")[0]
    assert trainer.global_step == warning["step"] < STEPS
    summary = json.loads((tmp_path / "stop" / "summary.json").read_text())
    assert summary["stopped"] == f"collapse at step {warning['step']}"


def test_an_unreadable_step_warns_once_and_the_fit_goes_on(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    with pytest.warns(UserWarning, match="diagnostics turned off at step 1") as caught:
        trainer, _ = _fit(tmp_path, "bad", SimSiam(output="loss"),
                                 embeddings="returned")
    assert len([w for w in caught if "nocollapse" in str(w.message)]) == 1
    assert trainer.global_step == STEPS
    summary = json.loads((tmp_path / "bad" / "summary.json").read_text())
    assert summary["stopped"] == "completed"
    assert "training_step returned ['loss']" in summary["note"]


@pytest.mark.parametrize(("options", "named"), [
    ({"evry": 5}, "unknown monitor option evry"),
    ({"patience": 0}, "monitor.patience"),
    ({"stop_gradient": "yes"}, "stop_gradient='yes'"),
    ({"embeddings": ""}, "embeddings=''"),
    ({"views": lambda *a: a, "embeddings": "projection_head"}, "not both"),
    ({"resume": "no"}, "resume='no'"),
])
def test_bad_options_are_refused_when_the_callback_is_made(options: dict, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        CollapseCallback("unused", **options)


def test_a_misnamed_projection_head_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no submodule 'proj'.*projection_head"):
        _lightly_fit(None, LightlySimSiam(), [CollapseCallback(tmp_path / "r",
                                                                embeddings="proj")],
                     max_steps=1)
    assert not (tmp_path / "r").exists()


def test_the_docs_plain_loop_example_writes_the_predictor_spectra(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    monitor = own_loop.plain_loop(tmp_path / "plain", epochs=2)
    assert monitor.warnings == []
    spectra = read_metrics(tmp_path / "plain" / "spectra.jsonl")
    assert [s["epoch"] for s in spectra] == [1, 2]
    assert len(spectra[-1]["Wp_eigenvalues"]) == 32 and "alignment" in spectra[-1]
    assert json.loads((tmp_path / "plain" / "summary.json").read_text())["step"] == 16


def _resumable_fit(tmp_path: Path, callbacks: list[CollapseCallback], ckpt_path: str | None,
                   **bounds: int) -> pl.Trainer:
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = pl.Trainer(logger=False, log_every_n_steps=2, callbacks=[*callbacks, saver],
                         **QUIET, **bounds)  # type: ignore[arg-type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "checkpoint directory exists"
        trainer.fit(SimSiam(predictor=False), own_loop.loader(), ckpt_path=ckpt_path)
    return trainer


def test_a_resumed_fit_restores_the_monitor_from_lightnings_checkpoint(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    first = CollapseCallback(tmp_path / "run")
    _resumable_fit(tmp_path, [first], None, max_epochs=2)
    assert first.monitor is not None
    peak, last = first.monitor.core.warning.peak_rank, first.monitor.last_step
    second = CollapseCallback(tmp_path / "run")
    _resumable_fit(tmp_path, [second], str(tmp_path / "ckpt" / "last.ckpt"), max_epochs=3)
    assert second.monitor is not None and second.monitor.core.warning.peak_rank >= peak > 0
    steps = [r["step"] for r in read_metrics(tmp_path / "run")]
    assert steps == sorted(set(steps)) and steps[-1] == 3 * 8 and last == 16


def test_a_fit_bounded_by_max_steps_resumes_and_two_callbacks_keep_their_state(
        tmp_path: Path) -> None:
    """The checkpoint of a fit stopped by ``max_steps`` at an epoch's end: the resumed fit
    ends that epoch again, which once raised "epoch=2 must be a whole number >= 3"."""
    torch.set_num_threads(1)

    def pair() -> list[CollapseCallback]:
        return [CollapseCallback(tmp_path / "a"), CollapseCallback(tmp_path / "b", every=4)]

    first = pair()
    _resumable_fit(tmp_path, first, None, max_steps=16)
    second = pair()
    _resumable_fit(tmp_path, second, str(tmp_path / "ckpt" / "last.ckpt"), max_steps=32)
    for name, every in (("a", 2), ("b", 4)):
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["stopped"] == "completed" and summary["step"] == 32
        assert [s["epoch"] for s in read_metrics(tmp_path / name / "spectra.jsonl")] == \
            [1, 2, 3, 4]
        steps = [r["step"] for r in read_metrics(tmp_path / name)]
        assert steps == [1, *range(every, 33, every)]  # no step lost or repeated


def test_resume_true_continues_a_run_dir_and_the_default_folder_is_versioned(
        tmp_path: Path) -> None:
    torch.set_num_threads(1)
    _lightly_fit(None, LightlySimSiam(), [CollapseCallback(tmp_path / "run")], max_steps=4)
    with pytest.raises(ConfigError, match="resume=True"):
        _lightly_fit(None, LightlySimSiam(), [CollapseCallback(tmp_path / "run")], max_steps=4)
    _lightly_fit(None, LightlySimSiam(), [CollapseCallback(tmp_path / "run", resume=True)],
                 max_steps=8)
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [1, 2, 4, 1, 2, 4, 6, 8]
    for _ in range(2):  # logger=False: <default_root_dir>/nocollapse, then nocollapse_1
        _lightly_fit(None, LightlySimSiam(), [CollapseCallback()], max_steps=2,
                     default_root_dir=tmp_path / "root")
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["nocollapse",
                                                                     "nocollapse_1"]
