"""The sections of a training config (``data``, ``optim``, ``device``, ``eval``).

:class:`~nocollapse.train.config.TrainConfig` holds one of each and re-exports them; the
``monitor`` section is :class:`~nocollapse.monitor.MonitorConfig`. Each section validates
its own values (``validate`` refuses an out-of-range value, naming the value, the valid
range and the key, and returns the section, normalised where a value has one spelling,
without changing the object it was called on).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from nocollapse.data import DATASETS
from nocollapse.errors import (
    ConfigError,
    check_choice,
    check_in_range,
    check_nonnegative,
    check_positive,
    quoted,
)
from nocollapse.evaluate.baselines import BASELINES

OPTIMIZERS = ("sgd", "lars")
ACCELERATORS = ("auto", "cpu", "cuda", "gpu", "mps")
# auto | bf16 | fp32 (train/precision.py resolves them), or a Lightning Fabric precision
PRECISIONS = ("auto", "bf16", "fp32", "32-true", "16-mixed", "bf16-mixed", "64-true")
COMPILE_CHOICES = ("auto", "true", "false")
EVAL_PROTOCOLS = ("standard", "fast")


def check_path(name: str, path: str | None) -> None:
    """Refuse a path that names no file: empty, or holding a NUL byte (``None``: unset)."""
    if path is not None and (not str(path).strip() or "\0" in str(path)):
        raise ConfigError(f"{name}={quoted(str(path))} is not a usable path (empty, or "
                          "holding a NUL byte); give a folder, e.g. --out runs/my-run")


def check_optional_positive(name: str, value: float | None) -> None:
    """``None`` (unset) or a positive value."""
    if value is not None:
        check_positive(name, value)


@dataclass
class DataConfig:
    """Which images to train on and how to batch and augment them."""

    name: str = "default"
    data_dir: str | None = None
    batch_size: int = 256
    # A prefix of the training split (None = all): the CPU default trains on a subset.
    subset: int | None = None
    test_subset: int | None = None
    # Image folders only: images are resized to image_size x image_size (32, or 96 as STL-10).
    image_size: int = 32
    # Keyword overrides for nocollapse.data.make_augment (crop_scale, blur_p, ...).
    augment: dict[str, object] = field(default_factory=dict)

    def validate(self) -> DataConfig:
        check_choice("data.name", self.name, tuple(DATASETS))
        if self.batch_size == 1:
            raise ConfigError("data.batch_size=1: the projector's BatchNorm needs at least 2 "
                              "images per batch; valid range: data.batch_size >= 2")
        check_path("data.data_dir", self.data_dir)
        check_positive("data.batch_size", self.batch_size)
        check_positive("data.image_size", self.image_size)
        check_optional_positive("data.subset", self.subset)
        check_optional_positive("data.test_subset", self.test_subset)
        return self


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule (linear warm-up, then cosine to ``final_lr``)."""

    name: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    # The theory's alpha_p: predictor lr = lr * predictor_lr_scale.
    predictor_lr_scale: float = 1.0
    warmup_epochs: float = 0.0
    cosine: bool = True
    final_lr: float = 0.0
    lars_eta: float = 0.001

    def validate(self) -> OptimConfig:
        check_nonnegative("optim.lr", self.lr)
        check_nonnegative("optim.final_lr", self.final_lr)
        check_nonnegative("optim.weight_decay", self.weight_decay)
        check_nonnegative("optim.predictor_lr_scale", self.predictor_lr_scale)
        check_in_range("optim.momentum", self.momentum, 0.0, 1.0)
        check_nonnegative("optim.warmup_epochs", self.warmup_epochs)
        check_positive("optim.lars_eta", self.lars_eta)
        check_choice("optim.name", self.name, OPTIMIZERS)
        return self


@dataclass
class DeviceConfig:
    """Lightning Fabric options: where and how the loop runs."""

    accelerator: str = "auto"
    devices: int = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    # torch.compile the learner: "auto" (on CUDA only: on CPU its compile time is not
    # repaid in a minutes-long run, docs/benchmarks.md), true or false.
    compile: str = "auto"
    threads: int | None = None

    def validate(self) -> DeviceConfig:
        """The section with ``compile`` lower-cased (``True`` from YAML is ``"true"``)."""
        check_choice("device.accelerator", self.accelerator, ACCELERATORS)
        check_choice("device.precision", self.precision, PRECISIONS)
        compile_choice = str(self.compile).lower()
        check_choice("device.compile", compile_choice, COMPILE_CHOICES)
        if self.threads is not None:  # more than the cores only oversubscribes them
            check_in_range("device.threads", self.threads, 1, os.cpu_count() or 1)
        check_positive("device.devices", self.devices)
        check_positive("device.num_nodes", self.num_nodes)
        if compile_choice == self.compile:
            return self
        return dataclasses.replace(self, compile=compile_choice)


@dataclass
class EvalConfig:
    """The k-NN monitor on the held-out split (InstDisc/BYOL weighted vote)."""

    # k-NN every this many steps (0 = never) on the first monitor_bank training and
    # monitor_test test images: the learning curve; the final evaluation uses full splits.
    knn_every: int = 0
    monitor_bank: int = 10000
    monitor_test: int = 2000
    knn_k: int = 200
    knn_t: float = 0.1
    # Also report the k-NN accuracy of a randomly initialised encoder at the end.
    random_baseline: bool = False
    # Baselines of the final table (raw_pixels, random_init, supervised), cached per data set.
    baselines: list[str] = field(default_factory=list)
    # Steps of the supervised bound (None: the run's planned steps); probe L-BFGS iterations.
    supervised_steps: int | None = None
    probe_epochs: int = 100
    # The linear probe in the final table (false: k-NN only, as the reproductions' cells).
    linear_probe: bool = True
    # standard: full train split as the k-NN bank (final figures) | fast: a fixed subsample
    # of evaluate.FAST_BANK train images, the full test split (sweeps, short runs)
    protocol: str = "standard"
    # Test images whose features (trained and random-init encoder) are kept for the report's
    # 2-D embedding map (embedding.npz); 0 = none.
    embedding_points: int = 2000
    # The final evaluation (k-NN, probe, baselines) at the end; false: none (a diagnosis
    # branch is judged by its label-free figures, docs/diagnose.md)
    final: bool = True

    def validate(self) -> EvalConfig:
        check_positive("eval.knn_k", self.knn_k)
        check_positive("eval.knn_t", self.knn_t)
        check_nonnegative("eval.knn_every", self.knn_every)
        check_nonnegative("eval.embedding_points", self.embedding_points)
        check_positive("eval.monitor_bank", self.monitor_bank)
        check_positive("eval.monitor_test", self.monitor_test)
        check_positive("eval.probe_epochs", self.probe_epochs)
        check_choice("eval.protocol", self.protocol, EVAL_PROTOCOLS)
        check_optional_positive("eval.supervised_steps", self.supervised_steps)
        if not isinstance(self.baselines, list):
            raise ConfigError(f"eval.baselines={quoted(self.baselines)} must be a list, "
                              f"e.g. [{', '.join(BASELINES)}]")
        for name in self.baselines:
            check_choice("eval.baselines entry", name, BASELINES)
        return self
