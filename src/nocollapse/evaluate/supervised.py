"""The supervised upper bound: the same backbone trained with labels (cross-entropy)."""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from nocollapse.errors import ConfigError, check_positive
from nocollapse.evaluate.progress import QUIET, EvalProgress
from nocollapse.threads import tuner_for


def train_supervised(backbone: nn.Module, feat_dim: int, images_uint8: torch.Tensor,
                     labels: torch.Tensor, augment: nn.Module, *, steps: int,
                     batch_size: int = 128, lr: float = 0.1, weight_decay: float = 5e-4,
                     seed: int = 0, device: torch.device | str = "cpu",
                     fixed_threads: bool = False, progress: EvalProgress = QUIET) -> nn.Module:
    """Train ``backbone`` in place with a linear head and cross-entropy; returns the backbone.

    ``steps`` SGD steps (momentum 0.9, cosine learning rate from ``lr`` to 0) on
    batches of ``batch_size`` images drawn without replacement epoch by epoch, each
    image seen as one view of ``augment`` (uint8 in, normalised float out). The
    head is thrown away: only the backbone's features are evaluated. On CPU the
    thread count is tuned to the machine's load as in training (:mod:`nocollapse.threads`)
    unless ``fixed_threads`` (the run's ``device.threads`` was set). ``progress`` shows
    the steps.
    """
    check_positive("supervised steps", steps)
    check_positive("supervised batch_size", batch_size)
    if int(labels.min()) < 0:
        raise ConfigError("the supervised baseline needs labels for every training image")
    if batch_size > len(images_uint8):
        raise ConfigError(f"supervised batch_size={batch_size} exceeds the "
                          f"{len(images_uint8)} training images")
    generator = torch.Generator().manual_seed(seed)
    head = nn.Linear(feat_dim, int(labels.max()) + 1).to(device)
    backbone.to(device).train()
    params = list(backbone.parameters()) + list(head.parameters())
    optimizer = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    per_epoch = len(images_uint8) // batch_size
    order = torch.randperm(len(images_uint8), generator=generator)
    tuner = tuner_for(torch.device(device), fixed=fixed_threads)
    with progress.phase("supervised: training with labels", steps, "steps") as phase:
        for step in range(steps):
            start = time.perf_counter()
            if step % per_epoch == 0 and step:
                order = torch.randperm(len(images_uint8), generator=generator)
            index = order[(step % per_epoch) * batch_size:(step % per_epoch + 1) * batch_size]
            views = augment(images_uint8[index].to(device), generator)
            loss = F.cross_entropy(head(backbone(views)), labels[index].to(device))
            for group in optimizer.param_groups:
                group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / steps))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if tuner is not None:
                tuner.record(time.perf_counter() - start)
            phase.advance()
    backbone.eval()
    return backbone
