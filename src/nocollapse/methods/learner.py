"""``SiameseLearner``: backbone + projector + predictor + target + loss, from one config."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import NamedTuple, cast

import torch
from torch import nn

from nocollapse.errors import ConfigError
from nocollapse.losses import LOSSES, Direction
from nocollapse.methods.config import LearnerConfig
from nocollapse.models import ProjectorMLP, build_backbone
from nocollapse.predictors import (
    CorrelationEstimate,
    CorrelationPredictor,
    MatrixPredictor,
    build_predictor,
)


def backbone_width(backbone: nn.Module, in_channels: int, image_size: int) -> int:
    """A backbone's feature width: its ``out_dim``, else measured on a zero batch."""
    width = getattr(backbone, "out_dim", None)
    if isinstance(width, int) and width > 0:
        return width
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.no_grad():
            device = next(backbone.parameters(), torch.empty(0)).device
            out = backbone(torch.zeros(2, in_channels, image_size, image_size, device=device))
    finally:
        backbone.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(f"the backbone maps (B, {in_channels}, {image_size}, {image_size}) "
                          f"images to {shape}; it must return (B, width) features (end it "
                          "with global pooling and flatten)")
    return int(out.shape[1])


class StepOutput(NamedTuple):
    """One training step: the loss (with graph) and detached embeddings for diagnostics.

    ``t1, t2``: the target branch's outputs on views 1 and 2 (``None`` when a learner
    does not give them), read by the monitor's ``tau`` estimate.
    """

    loss: torch.Tensor
    z1: torch.Tensor
    z2: torch.Tensor
    p1: torch.Tensor
    p2: torch.Tensor
    t1: torch.Tensor | None = None
    t2: torch.Tensor | None = None


def cosine_tau(progress: float, base_tau: float, final_tau: float) -> float:
    """BYOL's schedule: ``final - (final - base) (cos(pi progress) + 1) / 2``."""
    progress = min(max(progress, 0.0), 1.0)
    return final_tau - (final_tau - base_tau) * (math.cos(math.pi * progress) + 1) / 2


class SiameseLearner(nn.Module):
    """A non-contrastive learner; the method is entirely in ``config`` (see ``PRESETS``).

    ``backbone``: any ``nn.Module`` mapping ``(B, C, H, W)`` images to ``(B, width)``
    features, used instead of ``config.backbone`` (which then names nothing). Its
    ``width`` is its ``out_dim`` attribute when it has one, otherwise the width of its
    output on one ``(2, in_channels, image_size, image_size)`` zero batch, computed in
    evaluation mode without gradients (batch-norm statistics untouched). A backbone
    with convolutions is moved to channels-last memory, which oneDNN and cuDNN run
    faster (``benchmarks/bench_backbones.py``).
    """

    def __init__(self, config: LearnerConfig, in_channels: int, image_size: int,
                 backbone: nn.Module | None = None):
        super().__init__()
        self.config = config.validate()
        if backbone is None:
            self.backbone, feat_dim = build_backbone(config.backbone, in_channels, image_size)
        else:
            self.backbone, feat_dim = backbone, backbone_width(backbone, in_channels, image_size)
        if any(isinstance(m, nn.Conv2d) for m in self.backbone.modules()):
            self.backbone.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.projector = ProjectorMLP(feat_dim, config.proj_hidden_dim, config.proj_dim,
                                      config.proj_layers, last_bn=config.proj_last_bn)
        self.predictor = build_predictor(config.predictor, config.proj_dim,
                                         config.pred_hidden_dim, **config.predictor_options)
        # Non-spectral predictors: F_hat is still tracked (before the predictor is applied),
        # for the eigen-alignment diagnostics.
        self.tracker = (None if isinstance(self.predictor, CorrelationPredictor)
                        else CorrelationEstimate(config.proj_dim))
        # A CorrelationPredictor's ``update``: "before" folds the batch into F_hat before the
        # predictor is applied, "after" after it and the loss; "each-view" (implicit-var-reg):
        # each view folded in and predicted with its own matrix.
        update = (self.predictor.update if isinstance(self.predictor, CorrelationPredictor)
                  else "before")
        self._observe_first = update == "before"
        self._each_view = update == "each-view"
        self.target_net: nn.Module | None = None
        if config.target == "ema":
            self.target_net = copy.deepcopy(nn.Sequential(self.backbone, self.projector))
            self.target_net.requires_grad_(False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features (no projector), for k-NN and linear probes."""
        result: torch.Tensor = self.backbone(x)
        return result

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> StepOutput:
        z1, z2 = self.projector(self.backbone(x1)), self.projector(self.backbone(x2))
        matrices: tuple[torch.Tensor, torch.Tensor] | None = None
        if self.training and self._each_view:
            fold = cast(Callable[..., torch.Tensor], self.predictor.fold_view)
            matrices = (fold(z1.detach(), last=False), fold(z2.detach(), last=True))
            p1, p2 = z1 @ matrices[0].T, z2 @ matrices[1].T
        else:
            if self.training and self._observe_first:
                self._observe(z1, z2)
            p1, p2 = self.predictor(z1), self.predictor(z2)
        t1, t2 = self._targets(x1, x2, z1, z2)
        loss = self._loss(z1, z2, p1, p2, t1, t2, matrices)
        if self.training and not self._observe_first and matrices is None:  # after the loss
            self._observe(z1, z2)
        return StepOutput(loss, z1.detach(), z2.detach(), p1.detach(), p2.detach(),
                          t1.detach(), t2.detach())

    def _observe(self, z1: torch.Tensor, z2: torch.Tensor) -> None:
        """F_hat sees training batches only, never evaluation ones."""
        if self.tracker is not None:
            self.tracker.update(torch.cat([z1, z2]).detach())
        else:  # __init__ found a CorrelationPredictor: it keeps F_hat itself
            cast(CorrelationPredictor, self.predictor).update_correlation(z1.detach(),
                                                                           z2.detach())

    def _targets(self, x1: torch.Tensor, x2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.config.stop_gradient:
            return z1, z2
        if self.target_net is None:
            return z1.detach(), z2.detach()
        with torch.no_grad():
            return self.target_net(x1), self.target_net(x2)

    def _loss(self, z1: torch.Tensor, z2: torch.Tensor, p1: torch.Tensor, p2: torch.Tensor,
              t1: torch.Tensor, t2: torch.Tensor,
              matrices: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        entry = LOSSES[self.config.loss]
        Wp1 = Wp2 = None
        if entry.needs_matrix:
            Wp1, Wp2 = matrices if matrices is not None else (self._matrix(),) * 2
        first, second = Direction(z1, p1, t2, Wp1), Direction(z2, p2, t1, Wp2)
        if not self.config.symmetric:
            return entry.fn(first)
        total = entry.fn(first) + entry.fn(second)  # a sum, as BYOL's code computes it
        return total * 0.5 if self.config.symmetric_reduction == "mean" else total

    def _matrix(self) -> torch.Tensor:
        if not isinstance(self.predictor, MatrixPredictor):
            raise TypeError(f"loss {self.config.loss!r} needs a predictor with matrix(); "
                            f"{self.config.predictor!r} has none")
        return self.predictor.matrix()

    @torch.no_grad()
    def update_target(self, progress: float) -> float:
        """After each optimiser step: EMA of the online network; returns ``tau`` (0 = SimSiam)."""
        if self.target_net is None or not self.config.stop_gradient:
            return 0.0
        tau = cosine_tau(progress, self.config.base_tau, self.config.final_tau)
        online = nn.Sequential(self.backbone, self.projector)
        target_params: list[torch.Tensor] = list(self.target_net.parameters())
        online_params: list[torch.Tensor] = list(online.parameters())
        torch._foreach_lerp_(target_params, online_params, 1.0 - tau)
        for target_buffer, buffer in zip(self.target_net.buffers(), online.buffers(), strict=True):
            target_buffer.copy_(buffer)
        return tau

    def parameter_groups(self, weight_decay: float, predictor_lr_scale: float = 1.0
                         ) -> list[dict[str, object]]:
        """Optimiser groups: weights with decay, BN/bias without, the predictor with its lr.

        ``weight_decay`` is the theory's ``eta``; ``predictor_lr_scale`` its ``alpha_p``.
        """
        online = [p for m in (self.backbone, self.projector) for p in m.parameters()]
        predictor = [p for p in self.predictor.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in online if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in online if p.ndim <= 1], "weight_decay": 0.0},
            {"params": [p for p in predictor if p.ndim > 1], "weight_decay": weight_decay,
             "lr_scale": predictor_lr_scale},
            {"params": [p for p in predictor if p.ndim <= 1], "weight_decay": 0.0,
             "lr_scale": predictor_lr_scale},
        ]
        return [g for g in groups if g["params"]]

    def predictor_matrix(self) -> torch.Tensor | None:
        """``Wp`` for linear and spectral predictors; ``None`` for MLP and no predictor."""
        if isinstance(self.predictor, MatrixPredictor):
            return self.predictor.matrix().detach()
        return None

    @torch.no_grad()
    def output_layer(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(W, b)`` of the projector's last linear map, ``z = W h + b`` (detached).

        With the last BatchNorm (SimSiam; no affine parameters) folded in from its
        running statistics: ``W / sd`` and ``(b - mean) / sd``, ``sd = sqrt(var + eps)``.
        The linear theory's ``x`` is measured along it (docs/theory.md#theory-in-a-run).
        """
        layers = list(self.projector.net)
        index = max(i for i, m in enumerate(layers) if isinstance(m, nn.Linear))
        linear = cast(nn.Linear, layers[index])
        weight = linear.weight.detach()
        bias = None if linear.bias is None else linear.bias.detach()
        norm = layers[index + 1] if index + 1 < len(layers) else None
        if isinstance(norm, nn.BatchNorm1d) and norm.running_var is not None:
            sd = (norm.running_var + norm.eps).sqrt()
            mean = cast(torch.Tensor, norm.running_mean)
            bias = ((torch.zeros_like(mean) if bias is None else bias) - mean) / sd
            weight = weight / sd[:, None]
        return weight, bias

    def loss_gain(self) -> tuple[float, bool]:
        """The loss's gradient over the theory's one-direction loss, and whether normalised.

        The registry's ``gain`` times 2 when the two view directions are summed, not
        averaged (docs/theory.md#theory-in-a-run).
        """
        entry = LOSSES[self.config.loss]
        summed = self.config.symmetric and self.config.symmetric_reduction == "sum"
        return entry.gain * (2.0 if summed else 1.0), entry.normalised

    def correlation(self) -> torch.Tensor | None:
        """The running ``F_hat`` of online projector outputs."""
        if isinstance(self.predictor, CorrelationPredictor):
            return self.predictor.correlation.F_hat
        return self.tracker.F_hat if self.tracker is not None else None
