"""lightly's SimSiam / BYOL training step, written as its examples write it, for comparison.

lightly's model code (heads, loss, momentum update) does not use torchvision, but
``import lightly`` reaches modules that import it; torchvision is not installed here
(it would pull a CUDA build of torch), so :func:`stub_torchvision` answers those
imports with empty modules. Only the benchmark does this; nocollapse never imports lightly.
"""

from __future__ import annotations

import copy
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class _Placeholder(nn.Module):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()


class _TorchvisionStub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec: Any) -> types.ModuleType:
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda name: _Placeholder  # type: ignore[method-assign]
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def stub_torchvision() -> None:
    """Let ``import lightly`` succeed without torchvision (no-op when it is installed)."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        sys.meta_path.insert(0, _TorchvisionStub())


def make_lightly_step(method: str, backbone: nn.Module, config: Any, batch: int, channels: int,
                      size: int) -> Callable[[], None]:
    """One training step of lightly's SimSiam or BYOL on ``backbone`` with our head widths."""
    stub_torchvision()
    from lightly.loss import NegativeCosineSimilarity
    from lightly.models.modules import heads
    from lightly.models.utils import deactivate_requires_grad, update_momentum

    with torch.no_grad():
        width = backbone(torch.zeros(2, channels, size, size)).flatten(1).shape[1]
    criterion = NegativeCosineSimilarity()
    x0, x1 = torch.randn(batch, channels, size, size), torch.randn(batch, channels, size, size)
    if method == "simsiam":
        projection = heads.SimSiamProjectionHead(width, config.proj_hidden_dim, config.proj_dim)
        prediction = heads.SimSiamPredictionHead(config.proj_dim, config.pred_hidden_dim,
                                                 config.proj_dim)
        params = [*backbone.parameters(), *projection.parameters(), *prediction.parameters()]
        optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)

        def simsiam_step() -> None:
            z0, z1 = projection(backbone(x0).flatten(1)), projection(backbone(x1).flatten(1))
            p0, p1 = prediction(z0), prediction(z1)
            loss = 0.5 * (criterion(z0.detach(), p1) + criterion(z1.detach(), p0))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

        return simsiam_step
    projection = heads.BYOLProjectionHead(width, config.proj_hidden_dim, config.proj_dim)
    prediction = heads.BYOLPredictionHead(config.proj_dim, config.pred_hidden_dim,
                                          config.proj_dim)
    backbone_m, projection_m = copy.deepcopy(backbone), copy.deepcopy(projection)
    deactivate_requires_grad(backbone_m)
    deactivate_requires_grad(projection_m)
    params = [*backbone.parameters(), *projection.parameters(), *prediction.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)

    def byol_step() -> None:
        update_momentum(backbone, backbone_m, m=0.99)
        update_momentum(projection, projection_m, m=0.99)
        p0 = prediction(projection(backbone(x0).flatten(1)))
        p1 = prediction(projection(backbone(x1).flatten(1)))
        with torch.no_grad():
            z0 = projection_m(backbone_m(x0).flatten(1))
            z1 = projection_m(backbone_m(x1).flatten(1))
        loss = 0.5 * (criterion(p0, z1) + criterion(p1, z0))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    return byol_step
