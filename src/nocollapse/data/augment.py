"""BYOL/SimSiam augmentations for a whole batch at once, on the batch's device.

Per image: random resized crop (area ``crop_scale``, aspect ratio ``crop_ratio``),
horizontal flip, colour jitter (brightness, contrast, saturation, hue, applied in
that fixed order with probability ``jitter_p``), grayscale, Gaussian blur and
solarize, then per-channel normalisation. All random parameters are drawn from the
given ``torch.Generator`` -- a handful of numbers per image -- so a seed fixes the views.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from nocollapse.data import ops
from nocollapse.errors import ConfigError, check_in_range, check_nonnegative, check_positive

_CROP_TRIES = 10


def _rand(n: int, generator: torch.Generator | None, low: float = 0.0,
          high: float = 1.0) -> torch.Tensor:
    device = generator.device if generator is not None else torch.device("cpu")
    return low + (high - low) * torch.rand(n, generator=generator, device=device)


def sample_crop_boxes(n: int, height: int, width: int, scale: tuple[float, float],
                      ratio: tuple[float, float],
                      generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, 4) crop boxes (x0, y0, w, h), torchvision's RandomResizedCrop rule, vectorised.

    Draw area fraction in ``scale`` and log-uniform aspect ratio in ``ratio``, up to
    10 tries per image; the first box that fits wins, else the whole image is used.
    """
    area = height * width
    target = area * _rand(n * _CROP_TRIES, generator, *scale).view(n, _CROP_TRIES)
    log_r = _rand(n * _CROP_TRIES, generator, math.log(ratio[0]), math.log(ratio[1]))
    r = torch.exp(log_r).view(n, _CROP_TRIES)
    w, h = torch.sqrt(target * r), torch.sqrt(target / r)
    fits = (w <= width) & (h <= height)
    first = torch.argmax(fits.to(torch.int8), dim=1, keepdim=True)
    any_fit = fits.any(dim=1)
    w = torch.where(any_fit, w.gather(1, first).squeeze(1), float(width))
    h = torch.where(any_fit, h.gather(1, first).squeeze(1), float(height))
    x0 = (width - w) * _rand(n, generator)
    y0 = (height - h) * _rand(n, generator)
    return torch.stack([x0, y0, w, h], dim=1)


def _on_subset(x: torch.Tensor, mask: torch.Tensor,
               fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
               whole_batch: bool | None = None) -> torch.Tensor:
    """Apply ``fn(x[i], i)`` to the images where ``mask`` (B,) is true.

    On CPU (``whole_batch`` False, the default there) only the chosen images are
    computed: blur (p = 0.5) and solarize (p = 0.1) then cost only their share of the
    batch. On an accelerator (the default elsewhere) ``fn`` runs on the whole batch and
    ``torch.where`` keeps its result where ``mask`` is true: finding the chosen indices
    (``nonzero``) would make the host wait for the device every call, and the extra
    arithmetic is cheap there. Both give the same views.
    """
    if whole_batch is None:
        whole_batch = x.device.type != "cpu"
    if whole_batch:
        everything = torch.arange(x.shape[0], device=x.device)
        return torch.where(mask.to(x.device).view(-1, 1, 1, 1), fn(x, everything), x)
    index = mask.nonzero().squeeze(1)
    if index.numel() == 0:
        return x
    index = index.to(x.device)
    x[index] = fn(x[index], index)
    return x


def _check_pair(name: str, pair: Sequence[float], low: float, high: float) -> tuple[float, float]:
    if len(pair) != 2 or not low <= pair[0] <= pair[1] <= high:
        raise ConfigError(f"{name}={tuple(pair)!r} must be (min, max) with "
                          f"{low} <= min <= max <= {high}")
    return float(pair[0]), float(pair[1])


class BatchAugment(torch.nn.Module):
    """Two calls give two random views: uint8 (B, C, H, W) -> float32 (B, C, size, size).

    ``jitter`` = (brightness, contrast, saturation, hue) strengths as in torchvision's
    ColorJitter; saturation, hue and grayscale only apply to 3-channel images.
    ``blur_kernel`` defaults to the odd size nearest 10% of ``size`` (BYOL: 23 at 224).
    ``mean``/``std`` (one value per channel) normalise the [0, 1] output.
    """

    def __init__(self, size: int, channels: int, *, crop_scale: Sequence[float] = (0.2, 1.0),
                 crop_ratio: Sequence[float] = (3 / 4, 4 / 3), flip_p: float = 0.5,
                 jitter: Sequence[float] = (0.4, 0.4, 0.4, 0.1), jitter_p: float = 0.8,
                 gray_p: float = 0.2, blur_p: float = 0.0,
                 blur_sigma: Sequence[float] = (0.1, 2.0), blur_kernel: int | None = None,
                 solarize_p: float = 0.0, erase_p: float = 0.0,
                 erase_scale: Sequence[float] = (0.02, 0.33),
                 erase_ratio: Sequence[float] = (0.3, 3.3), mean: Sequence[float] | None = None,
                 std: Sequence[float] | None = None) -> None:
        super().__init__()
        check_positive("size", size)
        if channels not in (1, 3):
            raise ConfigError(f"channels={channels!r} must be 1 (grayscale) or 3 (RGB)")
        self.size, self.channels = int(size), int(channels)
        self.crop_scale = _check_pair("crop_scale", crop_scale, 1e-6, 1.0)
        self.crop_ratio = _check_pair("crop_ratio", crop_ratio, 1e-6, math.inf)
        for name, p in (("flip_p", flip_p), ("jitter_p", jitter_p), ("gray_p", gray_p),
                        ("blur_p", blur_p), ("solarize_p", solarize_p), ("erase_p", erase_p)):
            check_in_range(name, p, 0.0, 1.0)
        self.flip_p, self.jitter_p, self.gray_p = flip_p, jitter_p, gray_p
        self.blur_p, self.solarize_p, self.erase_p = blur_p, solarize_p, erase_p
        self.erase_scale = _check_pair("erase_scale", erase_scale, 1e-6, 1.0)
        self.erase_ratio = _check_pair("erase_ratio", erase_ratio, 1e-6, math.inf)
        if len(jitter) != 4:
            raise ConfigError(f"jitter={tuple(jitter)!r} must be 4 values: "
                              "(brightness, contrast, saturation, hue)")
        for name, value in zip(("brightness", "contrast", "saturation"), jitter[:3], strict=True):
            check_nonnegative(f"jitter {name}", value)
        check_in_range("jitter hue", jitter[3], 0.0, 0.5)
        self.jitter = tuple(float(v) for v in jitter)
        self.blur_sigma = _check_pair("blur_sigma", blur_sigma, 1e-6, math.inf)
        kernel = blur_kernel if blur_kernel is not None else max(3, 2 * round(0.05 * size) + 1)
        if kernel < 1 or kernel % 2 == 0 or kernel // 2 >= size:
            raise ConfigError(f"blur_kernel={kernel} must be odd, >= 1 and smaller than "
                              f"2*size={2 * size}")
        self.blur_kernel = int(kernel)
        mean = [0.0] * channels if mean is None else list(mean)
        std = [1.0] * channels if std is None else list(std)
        if len(mean) != channels or len(std) != channels or min(std) <= 0:
            raise ConfigError(f"mean={mean} and std={std} need {channels} values each, std > 0")
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return (f"size={self.size}, channels={self.channels}, crop_scale={self.crop_scale}, "
                f"flip_p={self.flip_p}, jitter={self.jitter}, jitter_p={self.jitter_p}, "
                f"gray_p={self.gray_p}, blur_p={self.blur_p}, solarize_p={self.solarize_p}, "
                f"erase_p={self.erase_p}")

    def _check_input(self, images: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != self.channels:
            raise ConfigError(
                f"BatchAugment expects uint8 images (B, {self.channels}, H, W), got "
                f"{images.dtype} {tuple(images.shape)}; build it with channels="
                f"{images.shape[1] if images.dim() == 4 else '?'} for these images"
            )

    def forward(self, images_uint8: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """One random view of each image: float32 (B, C, size, size), normalised."""
        self._check_input(images_uint8)
        b, _, h, w = images_uint8.shape
        device = images_uint8.device
        boxes = sample_crop_boxes(b, h, w, self.crop_scale, self.crop_ratio, generator)
        flip = _rand(b, generator) < self.flip_p
        x = images_uint8.to(torch.float32).div_(255)
        x = ops.crop_flip_resize(x, boxes.to(device), flip.to(device), self.size)
        x = self._colour(x, generator)
        if self.blur_p > 0:
            apply = _rand(b, generator) < self.blur_p
            sigma = _rand(b, generator, *self.blur_sigma)
            x = _on_subset(x, apply, lambda sel, i: ops.gaussian_blur(
                sel, sigma.to(device)[i], self.blur_kernel))
        if self.solarize_p > 0:
            apply = _rand(b, generator) < self.solarize_p
            x = _on_subset(x, apply, lambda sel, i: ops.solarize(sel))
        x = x.sub_(self.mean.to(device)).div_(self.std.to(device))
        if self.erase_p > 0:
            x = self._erase(x, generator)
        return x

    def _erase(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Random erasing (Zhong et al. 2020, torchvision's defaults): with ``erase_p``, a
        rectangle of ``erase_scale`` of the area and aspect ``erase_ratio`` is set to 0
        (the mean after normalisation). One box per image drawn like a crop; an image
        whose ten tries all miss keeps its pixels (the crop's fallback is the whole image)."""
        b, _, h, w = x.shape
        boxes = sample_crop_boxes(b, h, w, self.erase_scale, self.erase_ratio, generator)
        apply = (_rand(b, generator) < self.erase_p) & ((boxes[:, 2] < w) | (boxes[:, 3] < h))
        x0, y0, bw, bh = (v.round().to(x.device).view(-1, 1, 1) for v in boxes.unbind(1))
        cols = torch.arange(w, device=x.device).view(1, 1, -1)
        rows = torch.arange(h, device=x.device).view(1, -1, 1)
        inside = (cols >= x0) & (cols < x0 + bw) & (rows >= y0) & (rows < y0 + bh)
        inside &= apply.to(x.device).view(-1, 1, 1)
        return x.masked_fill_(inside.unsqueeze(1), 0.0)

    def _colour(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        b = x.shape[0]
        rgb = self.channels == 3
        # Saturation and hue mean nothing for one channel; brightness and contrast do.
        strengths = self.jitter if rgb else (*self.jitter[:2], 0.0, 0.0)
        if self.jitter_p > 0 and any(strengths):
            apply = _rand(b, generator) < self.jitter_p
            # All factors are drawn for every image so the number of draws is fixed.
            factors = [_rand(b, generator, max(0.0, 1 - s), 1 + s) for s in strengths]
            x = _on_subset(x, apply, lambda sel, i: _jitter(sel, strengths, factors, i))
        if rgb and self.gray_p > 0:
            apply = (_rand(b, generator) < self.gray_p).to(x.device).view(-1, 1, 1, 1)
            x = torch.where(apply, ops.grayscale(x).expand_as(x), x)
        return x


def _jitter(x: torch.Tensor, strengths: Sequence[float], factors: list[torch.Tensor],
            index: torch.Tensor) -> torch.Tensor:
    """Brightness, contrast, saturation, hue (torchvision's order) on the chosen images."""
    steps = (ops.adjust_brightness, ops.adjust_contrast, ops.adjust_saturation, ops.adjust_hue)
    for step, strength, factor in zip(steps, strengths, factors, strict=True):
        if strength > 0:
            f = factor.to(x.device)[index]
            # Hue takes a shift in turns, U[-hue, hue]; the others a factor around 1.
            x = step(x, f - 1 if step is ops.adjust_hue else f)
    return x
