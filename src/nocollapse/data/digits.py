"""scikit-learn's bundled handwritten digits (1797 images, 8x8, one channel).

The last-resort default: it ships with scikit-learn, so it needs no files.
Pixel values 0..16 are scaled to 0..255.
"""

from __future__ import annotations

import numpy as np
import torch

from nocollapse.data.dataset import ImageDataset, check_split

TEST_EVERY = 5  # every 5th image of each class (in file order) is held out: a 80/20 split


def load_digits_dataset(split: str = "train") -> ImageDataset:
    """Load the digits as uint8 (N, 1, 8, 8), labels 0..9, with a stratified 80/20 split.

    The split is a fixed rule (every ``TEST_EVERY``-th image of each class goes to
    test), so it does not depend on a random seed or the scikit-learn version.
    """
    check_split(split)
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    target = bunch.target.astype(np.int64)
    rank = np.zeros_like(target)
    for label in np.unique(target):
        where = np.flatnonzero(target == label)
        rank[where] = np.arange(len(where))
    keep = (rank % TEST_EVERY == TEST_EVERY - 1) == (split == "test")
    return ImageDataset(
        name="digits",
        images=torch.from_numpy(np.ascontiguousarray(pixels[keep][:, None])),
        labels=torch.from_numpy(target[keep]),
        classes=[str(d) for d in range(10)],
    )
