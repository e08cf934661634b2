"""An image folder: one sub-folder per class, read with Pillow and resized to a square.

Layout: ``root/<class>/<image>`` or, with explicit splits, ``root/train/<class>/...``
and ``root/test/<class>/...``. Without split folders, a deterministic stratified
split holds out every ``HOLDOUT``-th image (in sorted file order) of each class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from nocollapse.data.dataset import ImageDataset, check_memory, check_split, require_dir
from nocollapse.errors import DataError, MissingDataError, check_choice, check_positive

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
HOLDOUT = 10
_HOW = ("Arrange the images as ROOT/<class name>/<image file> (or ROOT/train/<class>/..., "
        "ROOT/test/<class>/...) and pass ROOT as --data-dir.")


def _class_files(folder: Path) -> dict[str, list[Path]]:
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = {c.name: sorted(f for f in c.iterdir() if f.suffix.lower() in EXTENSIONS)
             for c in classes}
    files = {name: found for name, found in files.items() if found}
    if not files:
        raise DataError(f"folder: {folder} has no class sub-folders holding images "
                        f"({', '.join(EXTENSIONS)}). {_HOW}")
    return files


def _read_image(path: Path, size: int, mode: str) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as img:
            resized = img.convert(mode).resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(resized, dtype=np.uint8)
    except Exception as exc:  # Pillow's decoders raise many types on a damaged file
        raise DataError(f"folder: cannot read image {path}: {type(exc).__name__}: "
                        f"{exc}") from exc
    return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)


def load_folder(root: str | Path | None, split: str = "train", *, size: int = 32,
                channels: int = 3) -> ImageDataset:
    """Load an image folder as uint8 (N, channels, size, size); labels index sorted class names.

    ``channels`` 3 converts to RGB, 1 to grayscale. Images are resized (not cropped)
    to ``size`` x ``size`` with bilinear filtering.
    """
    check_split(split)
    check_positive("size", size)
    check_choice("channels", str(channels), ("1", "3"))
    if root is None:
        raise DataError(f"folder: no data folder given. {_HOW}")
    root = require_dir(Path(root), "folder", "one sub-folder per class", _HOW)
    explicit = (root / "train").is_dir() and (root / "test").is_dir()
    files = _class_files(root / split if explicit else root)
    classes = list(_class_files(root / "train")) if explicit else list(files)
    unknown = sorted(set(files) - set(classes))
    if unknown:  # labels are indices into the training split's classes, matched by name
        raise DataError(f"folder: {root / split} has classes the training split "
                        f"{root / 'train'} lacks: {', '.join(unknown[:10])}. The splits must "
                        "name their class sub-folders alike")
    chosen: list[tuple[Path, int]] = []
    for name in files:
        label = classes.index(name)
        for i, path in enumerate(files[name]):
            held_out = i % HOLDOUT == HOLDOUT - 1
            if explicit or held_out == (split == "test"):
                chosen.append((path, label))
    if not chosen:
        raise MissingDataError(f"folder: the {split} split of {root} is empty (every {HOLDOUT}th "
                        "image of a class is held out for test; add more images)")
    check_memory(f"folder: {len(chosen)} images of {channels} x {size} x {size}",
                 len(chosen) * channels * size * size, "Use a smaller data.image_size")
    mode = "RGB" if channels == 3 else "L"
    images = np.stack([_read_image(path, size, mode) for path, _ in chosen])
    labels = np.array([label for _, label in chosen], dtype=np.int64)
    return ImageDataset(name="folder", images=torch.from_numpy(images).contiguous(),
                        labels=torch.from_numpy(labels), classes=classes)
