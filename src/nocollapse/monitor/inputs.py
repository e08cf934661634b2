"""What :class:`~nocollapse.monitor.Monitor` accepts from a user's loop, checked by name.

A bad argument raises :class:`MonitorInputError` (a :class:`~nocollapse.errors.NocollapseError`)
whose one-line message names the argument, what was given and what is expected, before
anything is computed or written; nothing here copies or modifies the caller's tensors.
"""

from __future__ import annotations

import math

import torch

from nocollapse.errors import NocollapseError


class MonitorInputError(NocollapseError, ValueError):
    """A tensor or value handed to the monitor that it cannot diagnose."""


def check_step(step: object, last: int | None) -> int:
    """A whole number >= 0, larger than the previous one observed."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise MonitorInputError(f"step={step!r} must be a whole number >= 0")
    if last is not None and step <= last:
        raise MonitorInputError(
            f"step={step} is not after the previous observed step {last}; steps must increase "
            "(a resumed loop: load the monitor's state_dict() saved with your checkpoint)")
    return step


def check_views(z1: object, z2: object) -> tuple[torch.Tensor, torch.Tensor]:
    """Two floating ``(B, d)`` tensors of one shape and device, ``B >= 2``; detached views.

    ``detach()`` shares the storage and leaves the caller's tensors and graph as they were.
    """
    for name, z in (("z1", z1), ("z2", z2)):
        if not isinstance(z, torch.Tensor):
            raise MonitorInputError(f"{name} is a {type(z).__name__}; pass a torch.Tensor of "
                                    "shape (batch, dim): one view's embeddings")
        if z.layout != torch.strided or z.is_meta:
            raise MonitorInputError(f"{name} is a {'meta' if z.is_meta else str(z.layout)} "
                                    "tensor; pass the embeddings as a dense tensor with data "
                                    "(z.to_dense(), on a real device)")
        if z.dim() != 2:
            raise MonitorInputError(
                f"{name} has shape {tuple(z.shape)}; expected (batch, dim): flatten the "
                "embeddings first (e.g. z.flatten(1))")
        if not z.is_floating_point():
            raise MonitorInputError(f"{name} has dtype {z.dtype}; expected a floating dtype")
        if z.shape[0] < 2 or z.shape[1] < 1:
            raise MonitorInputError(f"{name} has shape {tuple(z.shape)}; the diagnostics need "
                                    "at least 2 embeddings of at least 1 dimension")
    assert isinstance(z1, torch.Tensor) and isinstance(z2, torch.Tensor)
    if z1.shape != z2.shape:
        raise MonitorInputError(
            f"z1 has shape {tuple(z1.shape)} and z2 {tuple(z2.shape)}; the two views of one "
            "batch must have the same shape (same images, same embedding width)")
    if z1.device != z2.device:
        raise MonitorInputError(f"z1 is on {z1.device} and z2 on {z2.device}; pass both "
                                "views from one device")
    return z1.detach(), z2.detach()


def check_finite_views(step: int, z1: torch.Tensor, z2: torch.Tensor) -> None:
    """Refuse NaN or infinite embeddings (reads one boolean back from the device)."""
    for name, z in (("z1", z1), ("z2", z2)):
        if not bool(torch.isfinite(z).all()):
            raise MonitorInputError(
                f"{name} at step {step} holds NaN or infinite values; the run has diverged "
                "(lower the learning rate) or the embeddings were taken before a valid "
                "forward pass")


def predictor_matrix(predictor: object, dim: int) -> tuple[torch.Tensor | None, str]:
    """``(Wp or None, kind)`` of what ``observe(predictor=...)`` received.

    A ``(dim, dim)`` tensor or a bias-free or biased ``nn.Linear(dim, dim)`` (alone or
    as the only layer of an ``nn.Sequential``) gives ``Wp``; ``nn.Identity`` is "none";
    any other module is named by its class and has no matrix.
    """
    if isinstance(predictor, torch.nn.Sequential) and len(predictor) == 1:
        predictor = predictor[0]
    if isinstance(predictor, torch.nn.Identity):
        return None, "none"
    if isinstance(predictor, torch.nn.Linear):
        predictor = predictor.weight
    elif isinstance(predictor, torch.nn.Module):
        return None, type(predictor).__name__
    if not isinstance(predictor, torch.Tensor):
        raise MonitorInputError(
            f"predictor is a {type(predictor).__name__}; pass the predictor module, its "
            "(dim, dim) weight matrix, or None")
    if tuple(predictor.shape) != (dim, dim):
        raise MonitorInputError(
            f"predictor matrix has shape {tuple(predictor.shape)}; expected ({dim}, {dim}), "
            "the embeddings' width: a linear predictor maps the embedding to itself")
    return predictor.detach(), "linear"


def check_optional_number(name: str, value: object, low: float, high: float) -> float | None:
    """``None`` or a finite number in ``[low, high]`` (a tensor of one element is read)."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MonitorInputError(f"{name}={value!r} must be a finite number or None")
    if not low <= value <= high:
        raise MonitorInputError(f"{name}={value!r} is out of range; valid: {low} <= {name} "
                                f"<= {high}")
    return float(value)
