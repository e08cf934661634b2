"""nocollapse's collapse monitor in training code it did not write (docs/use-your-own-loop.md).

Two ways, on 512 of scikit-learn's 8x8 digits so that each run takes seconds on a CPU:

- ``plain_loop``: a plain PyTorch SimSiam loop calling ``nocollapse.Monitor``;
- ``SimSiam``: a LightningModule written the way lightly's examples write theirs
  (backbone, projection head ending in BatchNorm, prediction head, negative cosine
  loss, ``z`` detached in ``forward``), trained by a ``lightning.pytorch.Trainer`` with
  ``nocollapse.lightning.CollapseCallback``. ``predictor=False`` replaces the
  prediction head by ``nn.Identity``; ``stop_gradient=False`` removes the detach.

    python examples/own_loop.py --out runs/own-loop [--docs docs/use-your-own-loop]

trains the healthy module and the two broken ones with Lightning, and the plain loop,
then runs ``nocollapse report`` on the three Lightning runs (``--docs``: copies the
figures the docs show). tests/test_lightning.py trains the same module.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import shutil
from pathlib import Path

import lightning.pytorch as pl
import torch
from sklearn.datasets import load_digits
from torch import nn

from nocollapse import Monitor
from nocollapse.lightning import CollapseCallback

IMAGES, BATCH = 512, 64  # 8 steps an epoch
VARIANTS = {"healthy": {}, "no_predictor": {"predictor": False},
            "no_stop_gradient": {"stop_gradient": False}}
DOC_FIGURES = ("effective_rank.png", "collapse_level.png", "no_predictor-Z_eigenvalues.png")


class NegativeCosineSimilarity(nn.Module):
    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        return -nn.functional.cosine_similarity(x0, x1, dim=1).mean()


def mlp(sizes: list[int], last_bn: bool) -> nn.Sequential:
    """Linear-BN-ReLU blocks; the last Linear with BatchNorm (projection) or a bias."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        last = i == len(sizes) - 2
        layers.append(nn.Linear(a, b, bias=last and not last_bn))
        if not last or last_bn:
            layers.append(nn.BatchNorm1d(b))
        if not last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def backbone() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(2))


class SimSiam(pl.LightningModule):
    def __init__(self, predictor: bool = True, stop_gradient: bool = True, lr: float = 0.5,
                 output: str = "views") -> None:
        super().__init__()
        self.backbone = backbone()
        self.projection_head = mlp([128, 64, 64, 32], last_bn=True)
        self.prediction_head = mlp([32, 16, 32], last_bn=False) if predictor else nn.Identity()
        self.criterion = NegativeCosineSimilarity()
        self.stop_gradient, self.lr, self.output = stop_gradient, lr, output

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
        if self.output == "loss":  # what the callback cannot read (tests)
            return loss
        return {"loss": loss, "z1": z0, "z2": z1}  # the two views' embeddings for nocollapse

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9, weight_decay=5e-4)


class TwoViews(torch.utils.data.Dataset):
    """Two augmented views of each digit: a shift of up to a pixel, contrast, noise."""

    def __init__(self, images: int = IMAGES, seed: int = 0) -> None:
        digits = load_digits().images[:images]
        self.images = torch.tensor(digits, dtype=torch.float32).unsqueeze(1) / 16.0
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def view(self, x: torch.Tensor) -> torch.Tensor:
        g = self.generator
        x = torch.roll(x, shifts=torch.randint(-1, 2, (2,), generator=g).tolist(), dims=(1, 2))
        contrast = 0.6 + 0.8 * torch.rand(1, generator=g)
        return x * contrast + 0.1 * torch.randn(x.shape, generator=g)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.view(self.images[i]), self.view(self.images[i])


def loader(seed: int = 0) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(TwoViews(seed=seed), batch_size=BATCH, shuffle=True,
                                       drop_last=True,
                                       generator=torch.Generator().manual_seed(seed))


def lightning_run(run_dir: Path, module: SimSiam, epochs: int,
                  logger: pl.loggers.Logger | bool = False, **options: object
                  ) -> tuple[pl.Trainer, CollapseCallback]:
    """Train ``module`` with the collapse callback writing ``run_dir`` (every 2 steps: the
    Trainer's ``log_every_n_steps``, which the callback's ``every`` defaults to)."""
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    callback = CollapseCallback(run_dir, patience=3, **options)  # type: ignore[arg-type]
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=logger,
                         log_every_n_steps=2, enable_checkpointing=False,
                         enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[callback])
    torch.manual_seed(0)
    trainer.fit(module, loader())
    return trainer, callback


def plain_loop(run_dir: Path, epochs: int = 6) -> Monitor:
    """A plain PyTorch SimSiam loop (no Lightning) with ``nocollapse.Monitor``."""
    torch.manual_seed(0)
    encoder = nn.Sequential(backbone(), nn.Flatten(), mlp([128, 64, 64, 32], last_bn=True))
    predictor = nn.Linear(32, 32)  # a linear predictor: the monitor also draws Wp's spectrum
    params = [*encoder.parameters(), *predictor.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=5e-4)
    cosine = NegativeCosineSimilarity()
    step = 0
    with Monitor(run_dir, every=2, stop_gradient=True, tensorboard=False) as monitor:
        for epoch in range(epochs):
            for x1, x2 in loader(seed=epoch):
                z1, z2 = encoder(x1), encoder(x2)
                p1, p2 = predictor(z1), predictor(z2)
                loss = 0.5 * (cosine(p1, z2.detach()) + cosine(p2, z1.detach()))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                monitor.observe(step, z1, z2, predictor=predictor, loss=loss,
                                weight_decay=5e-4)
            monitor.end_epoch(epoch + 1)
    return monitor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/own-loop"))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--docs", type=Path, help="copy the docs' figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, variant in VARIANTS.items():
        torch.manual_seed(0)
        _, callback = lightning_run(args.out / name, SimSiam(**variant), args.epochs)
        warned = [(w["step"], w["likely_causes"][0][:40]) for w in callback.monitor.warnings] \
            if callback.monitor else []
        print(f"{name}: warnings {warned or 'none'}")
    plain = plain_loop(args.out / "plain_loop")
    print(f"plain_loop: warnings {[w['step'] for w in plain.warnings] or 'none'}")
    from nocollapse.report import build_report

    report = args.out / "report"
    build_report([args.out / name for name in VARIANTS], report)
    print(f"report: {report / 'report.md'}")
    if args.docs:
        args.docs.mkdir(parents=True, exist_ok=True)
        for name in DOC_FIGURES:
            shutil.copyfile(report / name, args.docs / name)


if __name__ == "__main__":
    main()
