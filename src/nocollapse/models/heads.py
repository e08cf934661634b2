"""Projector and MLP predictor heads."""

from __future__ import annotations

import torch
from torch import nn

from nocollapse.errors import ConfigError, check_positive


class ProjectorMLP(nn.Module):
    """``num_layers`` Linear layers with BN+ReLU between them (SimSiam: 3 layers, last BN).

    ``last_bn=True`` adds a BatchNorm without affine parameters on the output, as in
    SimSiam; BYOL and DirectPred use ``last_bn=False`` with 2 layers.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int = 2,
                 batch_norm: bool = True, last_bn: bool = False):
        super().__init__()
        for name, value in (("in_dim", in_dim), ("hidden_dim", hidden_dim), ("out_dim", out_dim)):
            check_positive(name, value)
        if num_layers < 1:
            raise ConfigError(f"projector num_layers={num_layers} is invalid; it must be an "
                              "integer >= 1 (BYOL/DirectPred use 2, SimSiam 3)")
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_layers - 1):
            layers.append(nn.Linear(dim, hidden_dim, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden_dim))
            layers.append(nn.ReLU(inplace=True))
            dim = hidden_dim
        layers.append(nn.Linear(dim, out_dim, bias=not last_bn))
        if last_bn:
            layers.append(nn.BatchNorm1d(out_dim, affine=False))
        self.net = nn.Sequential(*layers)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.net(x)
        return result


class MLPPredictor(nn.Module):
    """BYOL/SimSiam predictor: Linear-BN-ReLU-Linear (``hidden_dim`` is the bottleneck)."""

    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        check_positive("predictor dim", dim)
        check_positive("predictor hidden_dim", hidden_dim)
        self.net = nn.Sequential(nn.Linear(dim, hidden_dim, bias=False),
                                 nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                                 nn.Linear(hidden_dim, dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.net(z)
        return result
