"""Batched image operations with per-sample parameters, as plain tensor arithmetic.

All take float images in [0, 1] of shape (B, C, H, W) and per-sample parameters of
shape (B,), and run on the images' device. The colour operations follow
torchvision's definitions (ITU-R 601 luma for grayscale, HSV hue rotation), which
BYOL and SimSiam use.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)

_LUMA = (0.299, 0.587, 0.114)


def crop_flip_resize(images: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor,
                     size: int) -> torch.Tensor:
    """Crop each image to its box, flip it if asked, and resize to ``size`` (bilinear).

    ``boxes``: (B, 4) as (x0, y0, w, h) in pixels of the input (sub-pixel allowed);
    ``flip``: (B,) bool. One ``affine_grid`` + ``grid_sample`` for the whole batch;
    a box covering the whole image with ``size`` equal to its side reproduces it exactly.
    """
    b, _, h, w = images.shape
    x0, y0, bw, bh = boxes.to(images.dtype).unbind(1)
    theta = torch.zeros(b, 2, 3, dtype=images.dtype, device=images.device)
    # Normalised coordinates (align_corners=False): the image spans [-1, 1] edge to edge.
    theta[:, 0, 0] = torch.where(flip, -bw / w, bw / w)
    theta[:, 0, 2] = (2 * x0 + bw) / w - 1
    theta[:, 1, 1] = bh / h
    theta[:, 1, 2] = (2 * y0 + bh) / h - 1
    grid = F.affine_grid(theta, [b, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma (B, 1, H, W) of RGB images (B, 3, H, W)."""
    r, g, b = images.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _per_sample(factor: torch.Tensor) -> torch.Tensor:
    return factor.view(-1, 1, 1, 1)


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Multiply by ``factor`` (B,) and clamp to [0, 1]."""
    return (images * _per_sample(factor)).clamp_(0, 1)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with each image's mean luma (torchvision's contrast)."""
    gray = grayscale(images) if images.shape[1] == 3 else images
    mean = gray.mean(dim=(1, 2, 3), keepdim=True)
    f = _per_sample(factor)
    return (f * images + (1 - f) * mean).clamp_(0, 1)


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each RGB image with its own grayscale version."""
    f = _per_sample(factor)
    return (f * images + (1 - f) * grayscale(images)).clamp_(0, 1)


def adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of RGB images by ``shift`` (B,) turns, in [-0.5, 0.5], via HSV."""
    r, g, b = images.unbind(1)
    maxc, argmax = images.max(dim=1)
    minc = images.min(dim=1).values
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    # Hue in sixths of a turn, by which channel is largest (torchvision's rgb_to_hsv).
    hue = torch.where(argmax == 0, ((g - b) / safe) % 6,
                      torch.where(argmax == 1, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(delta > 0, hue, torch.zeros_like(hue))
    hue = (hue / 6 + shift.view(-1, 1, 1)) % 1.0
    sat = delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc))
    # hsv -> rgb with the standard k-offset formula: c = v - v*s*clamp(min(k, 4-k), 0, 1).
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=images.dtype, device=images.device)
    k = (offsets.view(1, 3, 1, 1) + 6 * hue.unsqueeze(1)) % 6
    ramp = torch.minimum(k, 4 - k).clamp_(0, 1)
    return maxc.unsqueeze(1) * (1 - sat.unsqueeze(1) * ramp)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Blur each image with its own Gaussian width ``sigma`` (B,), separable, reflect padding."""
    b, c, h, w = images.shape
    half = kernel_size // 2
    x = torch.arange(-half, half + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(x.view(1, -1) ** 2) / (2 * sigma.view(-1, 1).to(images.dtype) ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, dim=0)  # (B*C, k)
    flat = images.reshape(1, b * c, h, w)
    flat = F.pad(flat, (half, half, half, half), mode="reflect")
    flat = F.conv2d(flat, kernel.view(b * c, 1, 1, kernel_size), groups=b * c)
    flat = F.conv2d(flat, kernel.view(b * c, 1, kernel_size, 1), groups=b * c)
    return flat.view(b, c, h, w)


def solarize(images: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Invert pixels at or above ``threshold``."""
    return torch.where(images >= threshold, 1 - images, images)
