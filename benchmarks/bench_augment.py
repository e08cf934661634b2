"""Augmentation throughput: our batched pipeline vs kornia's vs per-image Pillow.

Prints source images/s: images whose two views are augmented per second (batch 256,
median of repeats after warm-up, uint8 input to normalised float32 output) for the
28x28x1, 32x32x3 and 96x96x3 presets, then a per-stage table (ours vs kornia's module
for the same stage) that decides where kornia is used. Run: ``.venv/bin/python
benchmarks/bench_augment.py [--repeats N]``."""

from __future__ import annotations

import argparse
import functools
import math
import random
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import median_seconds, print_table

from nocollapse.data import PRESETS, make_augment

BATCH = 256


def kornia_pipeline(preset: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """kornia.augmentation modules configured like our preset."""
    import kornia.augmentation as K  # noqa: N812 (kornia's documented alias)

    opts = make_augment(preset)
    b, c, s, h = opts.jitter
    stages: list[torch.nn.Module] = [
        K.RandomResizedCrop((opts.size, opts.size), scale=opts.crop_scale,
                            ratio=opts.crop_ratio, align_corners=False),
        K.RandomHorizontalFlip(p=opts.flip_p),
    ]
    if opts.channels == 3:
        stages += [K.ColorJitter(b, c, s, h, p=opts.jitter_p), K.RandomGrayscale(p=opts.gray_p)]
    if opts.blur_p > 0:
        stages.append(K.RandomGaussianBlur(opts.blur_kernel, opts.blur_sigma, p=opts.blur_p))
    if opts.solarize_p > 0:
        stages.append(K.RandomSolarize(thresholds=0.0, additions=0.0, p=opts.solarize_p))
    stages.append(K.Normalize(opts.mean.flatten(), opts.std.flatten()))
    return functools.partial(_on_float, torch.nn.Sequential(*stages))


def pillow_pipeline(preset: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """Per-image Pillow pipeline (what a torchvision-style Dataset does in its workers)."""
    from PIL import Image, ImageEnhance, ImageFilter, ImageOps

    opts = make_augment(preset)
    mean = opts.mean.flatten().numpy()[:, None, None]
    std = opts.std.flatten().numpy()[:, None, None]

    def one(array: np.ndarray) -> np.ndarray:
        img = Image.fromarray(array[0] if opts.channels == 1 else array.transpose(1, 2, 0))
        width, height = img.size
        area = width * height * random.uniform(*opts.crop_scale)
        r = math.exp(random.uniform(*map(math.log, opts.crop_ratio)))
        w, h = min(width, math.sqrt(area * r)), min(height, math.sqrt(area / r))
        x0, y0 = random.uniform(0, width - w), random.uniform(0, height - h)
        img = img.resize((opts.size, opts.size), Image.Resampling.BILINEAR,
                         box=(x0, y0, x0 + w, y0 + h))
        if random.random() < opts.flip_p:
            img = ImageOps.mirror(img)
        if opts.channels == 3 and random.random() < opts.jitter_p:
            for enhancer, strength in zip((ImageEnhance.Brightness, ImageEnhance.Contrast,
                                           ImageEnhance.Color), opts.jitter[:3], strict=True):
                img = enhancer(img).enhance(random.uniform(1 - strength, 1 + strength))
            hsv = np.array(img.convert("HSV"))
            shift = round(random.uniform(-opts.jitter[3], opts.jitter[3]) * 255)
            hsv[..., 0] = (hsv[..., 0].astype(np.int16) + shift) % 256
            img = Image.fromarray(hsv, "HSV").convert("RGB")
        if opts.channels == 3 and random.random() < opts.gray_p:
            img = img.convert("L").convert("RGB")
        if random.random() < opts.blur_p:
            img = img.filter(ImageFilter.GaussianBlur(random.uniform(*opts.blur_sigma)))
        if random.random() < opts.solarize_p:
            img = ImageOps.solarize(img, 128)
        out = np.asarray(img, dtype=np.float32) / 255
        out = out[None] if out.ndim == 2 else out.transpose(2, 0, 1)
        return (out - mean) / std

    return lambda x: torch.from_numpy(np.stack([one(a) for a in x.numpy()]))


def op_pairs(size: int) -> dict[str, tuple[Callable, Callable]]:
    """Per op: (our own tensor arithmetic, kornia's functional op), same batch and parameters.

    The library uses ours only where kornia's is at least 2x slower (crop, hue).
    """
    import kornia

    from nocollapse.data import ops, sample_crop_boxes

    g = torch.Generator().manual_seed(0)
    x = torch.rand(BATCH, 3, size, size, generator=g)
    factor = 0.6 + 0.8 * torch.rand(BATCH, generator=g)
    shift = 0.2 * torch.rand(BATCH, generator=g) - 0.1
    sigma = 0.1 + 1.9 * torch.rand(BATCH, generator=g)
    kernel = max(3, 2 * round(0.05 * size) + 1)
    boxes = sample_crop_boxes(BATCH, size, size, (0.2, 1.0), (3 / 4, 4 / 3), g)
    flip = torch.rand(BATCH, generator=g) < 0.5
    x0, y0, w, h = boxes.unbind(1)
    corners = torch.stack([torch.stack(c, 1) for c in ((x0, y0), (x0 + w - 1, y0),
                           (x0 + w - 1, y0 + h - 1), (x0, y0 + h - 1))], 1)

    def kornia_crop() -> torch.Tensor:
        out = kornia.geometry.transform.crop_and_resize(x, corners, (size, size))
        return torch.where(flip.view(-1, 1, 1, 1), out.flip(-1), out)

    enhance = kornia.enhance
    f = factor.view(-1, 1, 1, 1)
    return {
        "crop+flip+resize": (lambda: ops.crop_flip_resize(x, boxes, flip, size), kornia_crop),
        "brightness": (lambda: (x * f).clamp_(0, 1),
                       lambda: enhance.adjust_brightness_accumulative(x, factor)),
        "contrast": (lambda: (f * x + (1 - f) * _luma(x).mean((1, 2, 3), True)).clamp_(0, 1),
                     lambda: enhance.adjust_contrast_with_mean_subtraction(x, factor)),
        "saturation": (lambda: (f * x + (1 - f) * _luma(x)).clamp_(0, 1),
                       lambda: enhance.adjust_saturation_with_gray_subtraction(x, factor)),
        "hue": (lambda: ops.adjust_hue(x, shift),
                lambda: enhance.adjust_hue(x, shift * 2 * math.pi)),
        "grayscale": (lambda: _luma(x), lambda: kornia.color.rgb_to_grayscale(x)),
        "gaussian blur": (lambda: _own_blur(x, sigma, kernel),
                          lambda: kornia.filters.gaussian_blur2d(
                              x, kernel, sigma.view(-1, 1).expand(-1, 2))),
        "solarize": (lambda: torch.where(x >= 0.5, 1 - x, x), lambda: enhance.solarize(x, 0.5)),
    }


def _luma(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(1)


def _own_blur(x: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Our separable per-sample blur as grouped convolutions (kept here for the comparison)."""
    b, c, h, w = x.shape
    half = kernel_size // 2
    t = torch.arange(-half, half + 1, dtype=x.dtype)
    kern = torch.exp(-(t.view(1, -1) ** 2) / (2 * sigma.view(-1, 1) ** 2))
    kern = (kern / kern.sum(1, keepdim=True)).repeat_interleave(c, dim=0)
    flat = torch.nn.functional.pad(x.reshape(1, b * c, h, w), (half,) * 4, mode="reflect")
    flat = torch.nn.functional.conv2d(flat, kern.view(b * c, 1, 1, -1), groups=b * c)
    flat = torch.nn.functional.conv2d(flat, kern.view(b * c, 1, -1, 1), groups=b * c)
    return flat.view(b, c, h, w)


def _on_float(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return module(x.float() / 255)


def _rate(fn: Callable[[], object], device: str, repeats: int) -> float:
    """Images per second of ``fn()`` on one batch (median of ``repeats`` after one warm-up)."""
    def synced() -> None:
        fn()
        torch.cuda.synchronize()

    # one call augments one view; a source image needs two
    return BATCH / 2 / median_seconds(synced if device.startswith("cuda") else fn, repeats, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 is steadier on a shared CPU")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = args.device
    torch.manual_seed(0)
    random.seed(0)
    rows = []
    for preset in ("28x1", "32x3", "96x3"):
        size, channels = PRESETS[preset]["size"], PRESETS[preset]["channels"]
        x = torch.randint(0, 256, (BATCH, channels, size, size), dtype=torch.uint8).to(dev)
        gen = torch.Generator(device=dev).manual_seed(0)
        pipes = {"ours": functools.partial(make_augment(preset).to(dev), x, gen),
                 "kornia": functools.partial(kornia_pipeline(preset), x)}
        if dev == "cpu":
            pipes["pillow"] = functools.partial(pillow_pipeline(preset), x)
        rate = {name: _rate(fn, dev, args.repeats) for name, fn in pipes.items()}
        rows.append([f"{size}x{size}x{channels}", *(f"{rate[n]:,.0f}" for n in pipes),
                     f"{rate['ours'] / rate['kornia']:.1f}x"])
    header = ["images", "ours source img/s", "kornia source img/s"] + (
        ["pillow source img/s"] if dev == "cpu" else [])
    print_table(f"Augmentation pipeline, uint8 -> normalised float, batch {BATCH} ({dev})",
                [*header, "ours/kornia"], rows)
    if dev != "cpu":
        return
    op_rows = []
    for size in (32, 96):
        for name, (own, theirs) in op_pairs(size).items():
            r_own, r_k = _rate(own, dev, args.repeats), _rate(theirs, dev, args.repeats)
            op_rows.append([f"{size}x{size}x3", name, f"{r_own:,.0f}", f"{r_k:,.0f}",
                            f"{r_own / r_k:.1f}x"])
    print_table("Per op, same parameters (kornia functional ops; decides which we use)",
                ["images", "op", "own source img/s", "kornia source img/s", "own/kornia"], op_rows)


if __name__ == "__main__":
    main()
