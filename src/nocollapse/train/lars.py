"""LARS (You et al. 2017) as BYOL and SimSiam's linear evaluation use it.

Written here because no maintained, lightweight package offers it for plain
PyTorch: torchlars is unmaintained and needs a CUDA build, timm's ``Lars``
pulls in timm and torchvision (which does not work with the CPU torch build
used here), and lightly/solo-learn ship it inside much larger frameworks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import overload

import torch
from torch.optim.optimizer import ParamsT

from nocollapse.errors import check_in_range, check_nonnegative, check_positive


class LARS(torch.optim.Optimizer):
    """SGD with momentum whose step for each weight tensor is scaled by a trust ratio.

    For a tensor ``w`` with gradient ``g`` (weight decay ``wd`` added first):
    ``ratio = eta * ||w|| / ||g + wd * w||`` (1 when either norm is 0), and the
    update is the momentum SGD update of ``ratio * (g + wd * w)``. As in BYOL,
    groups with ``lars_exclude=True`` (biases and normalisation parameters, 1-D
    tensors by default) skip both the trust ratio and the weight decay.
    """

    def __init__(self, params: ParamsT, lr: float = 0.1, momentum: float = 0.9,
                 weight_decay: float = 0.0, eta: float = 0.001, exclude_1d: bool = True):
        check_nonnegative("lr", lr)
        check_in_range("momentum", momentum, 0.0, 1.0)
        check_nonnegative("weight_decay", weight_decay)
        check_positive("eta", eta)
        defaults = {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "eta": eta,
                    "lars_exclude": False, "exclude_1d": exclude_1d}
        super().__init__(params, defaults)

    @overload
    def step(self, closure: None = None) -> None: ...

    @overload
    def step(self, closure: Callable[[], float]) -> float: ...

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                excluded = group["lars_exclude"] or (group["exclude_1d"] and p.dim() <= 1)
                if not excluded:
                    if group["weight_decay"]:
                        grad = grad.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(grad)
                    # torch.where keeps this on the device: no host sync per tensor.
                    ratio = torch.where((w_norm > 0) & (g_norm > 0),
                                        group["eta"] * w_norm / g_norm, torch.ones_like(w_norm))
                    grad = grad * ratio
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = grad.clone()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss
