"""The sections of a training config (``data``, ``optim``, ``device``, ``eval``).

:class:`~nocollapse.train.config.TrainConfig` holds one of each, validates them and
re-exports them; the ``monitor`` section is :class:`~nocollapse.monitor.MonitorConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    augment: dict[str, Any] = field(default_factory=dict)


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
    # Test images whose features (trained and random-init encoder) are kept for the report's
    # 2-D embedding map (embedding.npz); 0 = none.
    embedding_points: int = 2000
