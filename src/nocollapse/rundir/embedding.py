"""A sample of the final test features, kept for the report's 2-D embedding map.

At the end of a run, ``eval.embedding_points`` test images (a seeded random sample, 2000 by
default) go through the trained encoder and through the random-init encoder of the same
backbone and seed (the ``random_init`` baseline's weights). Each set of features is
l2-normalised (the geometry k-NN uses) and reduced to its first 50 principal components,
which keeps ``embedding.npz`` small (2000 x 50 floats a map) and is the usual input to
t-SNE. The report draws the maps (:mod:`nocollapse.report.embedding`); nothing here runs
t-SNE, so the run's time does not grow by it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from nocollapse.data import ImageDataset
from nocollapse.evaluate import encoder_in_eval_mode, extract_features
from nocollapse.methods import Learner
from nocollapse.models import build_backbone
from nocollapse.runio import EMBEDDING_FILE, atomic_write_bytes

COMPONENTS = 50


def principal_scores(features: torch.Tensor, components: int = COMPONENTS
                     ) -> tuple[np.ndarray, float]:
    """(scores (N, k) float32, spread) of l2-normalised ``features`` (N, D).

    ``scores``: the centred features projected on their top ``k = min(components, N, D)``
    principal axes (from the N x N Gram matrix: cheaper than an SVD when D > N).
    ``spread``: the root-mean-square distance of the normalised features to their centroid,
    in [0, 1]; 0 when every image has the same direction (complete collapse).
    """
    x = F.normalize(features.double(), dim=1)
    centred = x - x.mean(0)
    spread = float(centred.pow(2).sum(1).mean().sqrt())
    eigenvalues, eigenvectors = torch.linalg.eigh(centred @ centred.T)
    k = min(components, *x.shape)
    top = eigenvalues.flip(0)[:k].clamp_min(0)
    scores = eigenvectors.flip(1)[:, :k] * top.sqrt()
    return scores.float().numpy(), spread


def write_embedding_sample(run_dir: str | Path, learner: Learner, test: ImageDataset,
                           preset: str, backbone: str, seed: int, points: int,
                           device: torch.device | str = "cpu") -> Path | None:
    """Write ``RUN_DIR/embedding.npz``; None (nothing written) when ``points`` is 0 or the
    test split is unlabelled.

    Arrays: ``labels`` and ``indices`` (N,) int64, ``trained`` and ``random_init`` (N, k)
    float32 principal scores, ``trained_spread`` and ``random_init_spread`` (0-d float64),
    ``classes`` (the class names, a unicode array: no pickle needed).
    """
    if points <= 0 or len(test) == 0 or int(test.labels.min()) < 0:
        return None
    generator = torch.Generator().manual_seed(seed)
    indices = torch.randperm(len(test), generator=generator)[:points].sort().values
    images = test.images[indices]
    with encoder_in_eval_mode(learner):
        trained = extract_features(learner.encode, images, preset=preset, device=device)
    c, h, _ = test.image_shape
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the weights the run started from, as the random_init row
        initial, _ = build_backbone(backbone, c, h)
    with encoder_in_eval_mode(initial.to(device)):
        random_init = extract_features(initial, images, preset=preset, device=device)
    trained_scores, trained_spread = principal_scores(trained)
    initial_scores, initial_spread = principal_scores(random_init)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, labels=test.labels[indices].numpy().astype(np.int64),
                        indices=indices.numpy().astype(np.int64), trained=trained_scores,
                        random_init=initial_scores, trained_spread=np.float64(trained_spread),
                        random_init_spread=np.float64(initial_spread),
                        classes=np.array([str(name) for name in test.classes], dtype=np.str_))
    path = Path(run_dir) / EMBEDDING_FILE
    atomic_write_bytes(path, buffer.getvalue())
    return path
