"""``nocollapse.lightning.CollapseCallback`` in a real ``lightning.pytorch.Trainer`` on CPU.

The module is SimSiam written the way lightly's examples write it (backbone,
projection head ending in BatchNorm, prediction head, negative cosine loss, ``z``
detached in ``forward``), on 512 of scikit-learn's 8x8 digits, 48 steps. Measured
here (lr 0.5, every 2 steps, patience 3): the healthy run's effective rank stays above
0.39 of its highest; without the predictor or without the stop-gradient it falls below
a quarter of it and the monitor warns (steps 24-26 of 48), naming that cause.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from pathlib import Path

import pytest

pytest.importorskip("lightning")

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import CSVLogger
from sklearn.datasets import load_digits
from torch import nn

from nocollapse.cli.main import main
from nocollapse.lightning import CollapseCallback
from nocollapse.monitor import MonitorInputError
from nocollapse.runio import read_metrics

EPOCHS, BATCH, IMAGES = 6, 64, 512  # 8 steps an epoch


class NegativeCosineSimilarity(nn.Module):
    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        return -nn.functional.cosine_similarity(x0, x1, dim=1).mean()


def _mlp(sizes: list[int], last_bn: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        last = i == len(sizes) - 2
        layers.append(nn.Linear(a, b, bias=last and not last_bn))
        if not last or last_bn:
            layers.append(nn.BatchNorm1d(b))
        if not last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class SimSiam(pl.LightningModule):
    def __init__(self, predictor: bool = True, stop_gradient: bool = True,
                 output: str = "views") -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2))
        self.projection_head = _mlp([128, 64, 64, 32], last_bn=True)
        self.prediction_head = _mlp([32, 16, 32], last_bn=False) if predictor else nn.Identity()
        self.criterion = NegativeCosineSimilarity()
        self.stop_gradient, self.output = stop_gradient, output

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(x).flatten(start_dim=1)
        z = self.projection_head(f)
        p = self.prediction_head(z)
        if self.stop_gradient:
            z = z.detach()
        return z, p

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> object:
        x0, x1 = batch
        z0, p0 = self.forward(x0)
        z1, p1 = self.forward(x1)
        loss = 0.5 * (self.criterion(z0, p1) + self.criterion(z1, p0))
        return loss if self.output == "loss" else {"loss": loss, "z1": z0, "z2": z1}

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.5, momentum=0.9, weight_decay=5e-4)


class TwoViews(torch.utils.data.Dataset):
    """Two augmented views of each digit: a shift of up to a pixel, contrast, noise."""

    def __init__(self) -> None:
        images = load_digits().images[:IMAGES]
        self.images = torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16.0
        self.generator = torch.Generator().manual_seed(0)

    def __len__(self) -> int:
        return len(self.images)

    def _view(self, x: torch.Tensor) -> torch.Tensor:
        g = self.generator
        x = torch.roll(x, shifts=torch.randint(-1, 2, (2,), generator=g).tolist(), dims=(1, 2))
        contrast = 0.6 + 0.8 * torch.rand(1, generator=g)
        return x * contrast + 0.1 * torch.randn(x.shape, generator=g)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._view(self.images[i]), self._view(self.images[i])


def _fit(tmp_path: Path, name: str, module: SimSiam, **options: object
         ) -> tuple[pl.Trainer, CollapseCallback]:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.manual_seed(0)
    callback = CollapseCallback(tmp_path / name, every=2, patience=3, tensorboard=False,
                                **options)  # type: ignore[arg-type]
    trainer = pl.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1,
                         logger=CSVLogger(tmp_path / "csv", name=name),
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[callback])
    loader = torch.utils.data.DataLoader(TwoViews(), batch_size=BATCH, shuffle=True,
                                         drop_last=True,
                                         generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    trainer.fit(module, loader)
    return trainer, callback


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
    assert steps[0] == 1 and steps[-1] == EPOCHS * IMAGES // BATCH  # every step was seen
    assert len(read_metrics(runs["healthy"] / "spectra.jsonl")) == EPOCHS


@pytest.mark.parametrize(("case", "named", "not_named"), [
    ("no_predictor", "no predictor", "no stop-gradient"),
    ("no_stop_gradient", "no stop-gradient", "no predictor"),
])
def test_broken_module_warns_naming_its_cause(runs: dict[str, Path], case: str, named: str,
                                             not_named: str) -> None:
    warnings = _warnings(runs[case])
    assert warnings, f"{case} did not warn within {EPOCHS * IMAGES // BATCH} steps"
    first = warnings[0]
    causes = " ".join(first["likely_causes"])
    assert named in causes and not_named not in causes, causes
    assert first["step"] < EPOCHS * IMAGES // BATCH


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
    assert trainer.global_step == warning["step"] < EPOCHS * IMAGES // BATCH
    summary = json.loads((tmp_path / "stop" / "summary.json").read_text())
    assert summary["stopped"] == f"collapse at step {warning['step']}"


def test_a_training_step_without_the_views_is_refused_by_name(tmp_path: Path) -> None:
    expected = re.escape("return {'loss': loss, 'z1': z1, 'z2': z2}")
    with pytest.raises(MonitorInputError, match=expected):
        _fit(tmp_path, "bad", SimSiam(output="loss"))
