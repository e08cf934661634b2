"""Batched image operations with per-sample parameters.

All take float images in [0, 1] of shape (B, C, H, W) and per-sample parameters of
shape (B,), and run on the images' device. The colour operations follow
torchvision's definitions (ITU-R 601 luma for grayscale, HSV hue rotation), which
BYOL and SimSiam use. Colour, blur and solarize ops call kornia's functional ops,
which were within 2x of our own versions; crop+flip+resize and hue are our own
because kornia's were about 2x slower here (benchmarks/bench_augment.py, docs/data.md).
kornia is imported on first use: it costs ~1 s at start-up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 (the usual alias)


def crop_flip_resize(images: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor,
                     size: int) -> torch.Tensor:
    """Crop each image to its box, flip it if asked, and resize to ``size`` (bilinear).

    ``boxes``: (B, 4) as (x0, y0, w, h) in pixels of the input (sub-pixel allowed);
    ``flip``: (B,) bool. One ``affine_grid`` + ``grid_sample`` for the whole batch;
    a box covering the whole image with ``size`` equal to its side reproduces it exactly.
    """
    b, _, h, w = images.shape
    x0, y0, bw, bh = boxes.to(images.dtype).unbind(1)
    # Normalised coordinates (align_corners=False): the image spans [-1, 1] edge to edge, and
    # output pixel i sits at (2i + 1) / size - 1. The map is axis-aligned, so the grid is an
    # outer sum; affine_grid's general batched matmul costs ~5x more on CPU.
    base = (2 * torch.arange(size, dtype=images.dtype, device=images.device) + 1) / size - 1
    scale_x = torch.where(flip, -bw / w, bw / w)
    gx = ((2 * x0 + bw) / w - 1).view(b, 1) + scale_x.view(b, 1) * base.view(1, size)
    gy = ((2 * y0 + bh) / h - 1).view(b, 1) + (bh / h).view(b, 1) * base.view(1, size)
    grid = torch.stack(torch.broadcast_tensors(gx.view(b, 1, size), gy.view(b, size, 1)), dim=-1)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """Luma (B, 1, H, W) of RGB images (B, 3, H, W), ITU-R 601 weights (kornia's op)."""
    from kornia.color import rgb_to_grayscale

    return rgb_to_grayscale(images)


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Multiply by ``factor`` (B,) and clamp to [0, 1] (torchvision's brightness)."""
    from kornia.enhance import adjust_brightness_accumulative

    return adjust_brightness_accumulative(images, factor)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each image with its mean luma, clamp to [0, 1] (torchvision's contrast)."""
    from kornia.enhance import adjust_contrast_with_mean_subtraction

    return adjust_contrast_with_mean_subtraction(images, factor)


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend each RGB image with its own grayscale version (kornia's torchvision-style op)."""
    from kornia.enhance import adjust_saturation_with_gray_subtraction

    return adjust_saturation_with_gray_subtraction(images, factor)


def adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of RGB images by ``shift`` (B,) turns, in [-0.5, 0.5], as HSV does.

    Equal to RGB -> HSV -> shift H -> RGB (kornia's and torchvision's adjust_hue) to
    1e-6, without building the HSV image: the output channel is ``max - (max - min) *
    ramp(hue)``. About 2x faster than kornia's at 96x96 (docs/data.md).
    """
    maxc, argmax = images.max(dim=1, keepdim=True)
    delta = maxc - images.amin(dim=1, keepdim=True)
    # (g - b, b - r, r - g): the numerator of the hue for each possible largest channel.
    diff = images.roll(-1, dims=1).sub_(images.roll(-2, dims=1))
    # Gray pixels have delta = 0 and diff = 0: any finite hue then maps back to max.
    hue6 = diff.gather(1, argmax).div_(delta.clamp_min(1e-12))
    hue6.add_(argmax.to(images.dtype).mul_(2)).add_(6 * shift.view(-1, 1, 1, 1))
    # (5, 3, 1) made on the device: torch.tensor from a list would be a host-device copy
    offsets = torch.arange(5.0, 0.0, -2.0, dtype=images.dtype, device=images.device)
    k = torch.remainder(hue6 + offsets.view(1, 3, 1, 1), 6)
    ramp = torch.minimum(k, 4 - k).clamp_(0, 1)
    return maxc - delta * ramp


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Blur each image with its own Gaussian width ``sigma`` (B,); separable, reflect padding.

    The (B, kernel_size) kernels are built on the images' device and handed to kornia's
    separable filter. Equal to kornia's ``gaussian_blur2d`` to float rounding (tested),
    without its positivity check, which copies ``sigma`` to the host and so waits for
    the GPU twice a step (counted by benchmarks/gpu_check.py); ``sigma`` here comes
    from the augmentation's own positive range.
    """
    from kornia.filters import filter2d_separable

    taps = torch.arange(kernel_size, dtype=images.dtype, device=images.device)
    taps = taps - (kernel_size - 1) / 2
    kernel = torch.exp(-taps.square() / (2 * sigma.to(images.dtype).view(-1, 1).square()))
    kernel = kernel / kernel.sum(dim=1, keepdim=True)
    return filter2d_separable(images, kernel, kernel, border_type="reflect")


def solarize(images: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Invert pixels at or above ``threshold`` (kornia's rule; its own function moves the
    float threshold to the device, a host-device sync each call)."""
    return torch.where(images >= threshold, 1.0 - images, images)
