"""Overhead of CollapseMonitor's per-step diagnostics relative to a training step.

Times one SimSiam-style step (backbone + projector + predictor, symmetrised cosine
loss, SGD) and one ``CollapseMonitor.on_log`` that computes the diagnostics, then
prints the overhead per step at the default interval (``MonitorConfig.every``):
``on_log time / (every * step time)``. Also times ``on_epoch_end`` (spectra).

    .venv/bin/python benchmarks/bench_monitor.py [--device cuda] [--quick] [--loop STEPS]

``--loop STEPS`` also runs the real training loop (``nocollapse train``'s CPU default:
SimSiam on the default data set, batch 256, log_every 10) for STEPS steps with a
timed monitor at its default options, and prints the share of the loop's time spent
in the monitor's callbacks.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import torch
from benchutil import median_seconds, print_table
from torch import nn

from nocollapse.train.monitor import CollapseMonitor, MonitorConfig


class Output(NamedTuple):
    loss: torch.Tensor
    z1: torch.Tensor
    z2: torch.Tensor
    p1: torch.Tensor
    p2: torch.Tensor


def small_cnn(width: int, channels: int = 1) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 4 * width, 3, padding=1),
        nn.BatchNorm2d(4 * width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
    )


def resnet18_like(width: int) -> nn.Module:
    """A ResNet-18-sized stack of 3x3 convolutions for 32x32 RGB (GPU figure only)."""
    layers: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU()]
    channels = width
    for stage, out in enumerate([width, 2 * width, 4 * width, 8 * width]):
        for block in range(4):
            stride = 2 if stage > 0 and block == 0 else 1
            layers += [nn.Conv2d(channels, out, 3, stride, 1), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())


class Learner(nn.Module):
    def __init__(self, backbone: nn.Module, features: int, dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.projector = nn.Sequential(
            nn.Linear(features, dim), nn.BatchNorm1d(dim), nn.ReLU(), nn.Linear(dim, dim)
        )
        self.predictor = nn.Linear(dim, dim, bias=False)

    def predictor_matrix(self) -> torch.Tensor:
        return self.predictor.weight.detach()

    def correlation(self) -> None:
        return None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def update_target(self, progress: float) -> None:
        return None

    def parameter_groups(self, weight_decay: float, predictor_lr_scale: float) -> list[dict]:
        return [{"params": list(self.parameters()), "weight_decay": weight_decay}]

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> Output:
        z1, z2 = self.projector(self.backbone(x1)), self.projector(self.backbone(x2))
        p1, p2 = self.predictor(z1), self.predictor(z2)
        cos = nn.functional.cosine_similarity
        loss = -(cos(p1, z2.detach()).mean() + cos(p2, z1.detach()).mean())
        return Output(loss, z1, z2, p1, p2)

    def step(self, x1: torch.Tensor, x2: torch.Tensor) -> Output:
        z1, z2 = self.projector(self.backbone(x1)), self.projector(self.backbone(x2))
        p1, p2 = self.predictor(z1), self.predictor(z2)
        cos = nn.functional.cosine_similarity
        loss = -(cos(p1, z2.detach()).mean() + cos(p2, z1.detach()).mean())
        loss.backward()
        return Output(loss.detach(), z1.detach(), z2.detach(), p1.detach(), p2.detach())


def measure(name: str, learner: Learner, shape: tuple[int, ...], device: str, repeats: int) -> list:
    learner = learner.to(device)
    optimizer = torch.optim.SGD(learner.parameters(), lr=0.05, momentum=0.9)
    x1, x2 = torch.randn(shape, device=device), torch.randn(shape, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    holder: dict[str, Output] = {}

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        holder["out"] = learner.step(x1, x2)
        optimizer.step()
        sync()

    step_s = median_seconds(train_step, repeats=repeats, warmup=2)
    config = MonitorConfig(tensorboard=False)
    with tempfile.TemporaryDirectory() as run_dir:
        monitor = CollapseMonitor(config, Path(run_dir))

        def log() -> None:
            monitor.last_step = None  # force the diagnostics on every call
            monitor.on_log(0, holder["out"], learner, {})
            sync()

        log_s = median_seconds(log, repeats=repeats, warmup=2)
        epoch_s = median_seconds(lambda: monitor.on_epoch_end(0, learner, Path(run_dir)), 3, 1)
    dim = holder["out"].z1.shape[1]
    overhead = log_s / (config.every * step_s)
    return [
        name,
        device,
        f"{shape[0]}x{dim}",
        f"{1e3 * step_s:.1f}",
        f"{1e3 * log_s:.2f}",
        config.every,
        f"{100 * overhead:.2f}%",
        f"{1e3 * epoch_s:.0f}",
    ]


class TimedMonitor(CollapseMonitor):
    """The monitor, with the wall time of its callbacks accumulated."""

    log_seconds = 0.0
    epoch_seconds = 0.0
    epochs = 0

    def on_log(self, *args: object) -> None:
        start = time.perf_counter()
        super().on_log(*args)  # type: ignore[arg-type]
        self.log_seconds += time.perf_counter() - start

    def on_epoch_end(self, *args: object) -> None:
        start = time.perf_counter()
        super().on_epoch_end(*args)  # type: ignore[arg-type]
        self.epoch_seconds += time.perf_counter() - start
        self.epochs += 1


def loop_overhead(steps: int, device: str) -> list:
    from nocollapse.train import load_config, train
    from nocollapse.train.config import CPU_DEFAULT

    with tempfile.TemporaryDirectory() as root:
        overrides = [
            f"out={root}/run",
            f"max_steps={steps}",
            "epochs=1000",
            "time_budget_s=null",
            "eval.random_baseline=false",
            "data.test_subset=256",
            f"device.accelerator={'cpu' if device == 'cpu' else 'cuda'}",
        ]
        config = load_config(None, overrides, base=CPU_DEFAULT)
        monitor = TimedMonitor(MonitorConfig(tensorboard=False), config.out)
        try:
            from nocollapse.methods import SiameseLearner  # noqa: F401

            factory, learner = None, config.method
        except ImportError:  # methods not installed yet: the same-sized stand-in learner
            factory = lambda _c, ch, _s: Learner(small_cnn(32, ch), 128, 128)  # noqa: E731
            learner = "stand-in"
        result = train(config, quiet=True, callbacks=[monitor], learner_factory=factory)
    share = monitor.log_seconds / result.seconds
    per_epoch = monitor.epoch_seconds / max(monitor.epochs, 1)
    return [
        f"train loop, {learner}, {config.data.name}",
        device,
        f"{config.data.batch_size} images",
        f"{1e3 * result.seconds / result.step:.1f}",
        f"{1e3 * monitor.log_seconds:.0f} over {result.step} steps",
        monitor.config.every,
        f"{100 * share:.2f}%",
        f"{1e3 * per_epoch:.0f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument(
        "--loop",
        type=int,
        default=0,
        metavar="STEPS",
        help="also time the monitor inside the real training loop",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    repeats = 3 if args.quick else 10
    rows = [
        measure(
            "small CNN 28x28 (CPU default)",
            Learner(small_cnn(32), 128, 128),
            (256, 1, 28, 28),
            args.device,
            repeats,
        )
    ]
    if args.device.startswith("cuda"):
        rows.append(
            measure(
                "ResNet-18-like 32x32",
                Learner(resnet18_like(64), 512, 2048),
                (512, 3, 32, 32),
                args.device,
                repeats,
            )
        )
    if args.loop:
        rows.append(loop_overhead(args.loop, args.device))
    print_table(
        "CollapseMonitor overhead at the default interval",
        [
            "model",
            "device",
            "batch x d",
            "step ms",
            "on_log ms",
            "every",
            "overhead",
            "on_epoch_end ms",
        ],
        rows,
    )


if __name__ == "__main__":
    main()
