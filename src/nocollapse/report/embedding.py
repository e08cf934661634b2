"""The 2-D embedding map: a run's final test features beside the random-init encoder's.

Reads ``embedding.npz`` (written at the end of a run: a sample of test images' principal
scores, see :mod:`nocollapse.rundir.embedding`; loaded without pickle), maps each set of
points to 2-D with t-SNE (scikit-learn), or UMAP when ``umap-learn`` is installed, and
draws them coloured by class. A map is a picture, not a measure: t-SNE invents clusters
from noise, so each panel's title carries a number read from the 2-D coordinates (the
class separation, below) and a completely collapsed embedding, whose points all coincide,
is drawn as the single point it is instead of being handed to t-SNE.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nocollapse.report.figures import FIGSIZE, save_figure
from nocollapse.runio import EMBEDDING_FILE

# Below this root-mean-square distance to the centroid (the l2-normalised features' spread,
# at most 1 for unit vectors) every point has the same direction up to float32 rounding of
# a collapsed network: there is nothing for t-SNE to lay out.
COINCIDE = 1e-4
PANELS = (("trained", "trained encoder"), ("random_init", "random init (same backbone)"))
PANELS_KEYS = tuple(key for key, _ in PANELS)


@dataclass
class EmbeddingMap:
    """The 2-D coordinates of one panel, the class labels, and what they say."""

    xy: np.ndarray  # (N, 2)
    labels: np.ndarray  # (N,)
    method: str  # "t-SNE", "UMAP" or "none (all points coincide)"
    spread: float  # of the features before the map (see principal_scores)

    @property
    def separation(self) -> float:
        return class_separation(self.xy, self.labels)


def read_embedding(run_dir: str | Path) -> tuple[dict[str, np.ndarray] | None, str]:
    """The arrays of ``RUN_DIR/embedding.npz``, or (None, why not)."""
    path = Path(run_dir) / EMBEDDING_FILE
    if not path.is_file():
        return None, (f"no {EMBEDDING_FILE}: runs write it at their end (eval.embedding_points"
                      ">0, a labelled test split); `nocollapse evaluate RUN_DIR` adds it")
    try:
        with np.load(path, allow_pickle=False) as loaded:
            arrays = {name: loaded[name] for name in loaded.files}
    except (OSError, ValueError, EOFError) as error:
        return None, f"{EMBEDDING_FILE} is damaged ({type(error).__name__})"
    expected = {"labels", "trained", "random_init", "trained_spread", "random_init_spread"}
    if not expected <= set(arrays) or any(
            arrays[name].shape[:1] != arrays["labels"].shape for name in PANELS_KEYS):
        return None, f"{EMBEDDING_FILE} lacks arrays or their lengths differ"
    return arrays, ""



def map_2d(points: np.ndarray, labels: np.ndarray, spread: float, seed: int = 0
           ) -> EmbeddingMap:
    """``points`` (N, k) to 2-D: UMAP if installed, else t-SNE (perplexity 30, or less for
    few points); all zeros when the features coincide (``spread < COINCIDE``)."""
    n = points.shape[0]
    if spread < COINCIDE or n < 3:
        return EmbeddingMap(np.zeros((n, 2)), labels, "none (all points coincide)", spread)
    try:
        import umap  # type: ignore[import-not-found]  # optional: pip install umap-learn

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reducer = umap.UMAP(n_components=2, random_state=seed, n_jobs=1)
            xy = np.asarray(reducer.fit_transform(points), dtype=np.float64)
        return EmbeddingMap(xy, labels, "UMAP", spread)
    except ImportError:
        pass
    from sklearn.manifold import TSNE

    tsne = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3), init="pca",
                random_state=seed)
    xy = np.asarray(tsne.fit_transform(points.astype(np.float32)), dtype=np.float64)
    return EmbeddingMap(xy, labels, "t-SNE", spread)


def class_separation(xy: np.ndarray, labels: np.ndarray) -> float:
    """Share of the 2-D coordinates' variance that lies between the class means, in [0, 1]:
    1 when each class sits on its own point, near 0 when the classes are mixed (a collapsed
    encoder's map, where t-SNE lays out noise), and 0 when all points coincide."""
    centred = xy - xy.mean(0)
    total = float((centred ** 2).sum())
    if total <= 0:
        return 0.0
    between = sum(float((labels == c).sum()) * float((centred[labels == c].mean(0) ** 2).sum())
                  for c in np.unique(labels))
    return between / total


def embedding_maps(arrays: dict[str, np.ndarray]) -> dict[str, EmbeddingMap]:
    """One map per panel (``trained``, ``random_init``)."""
    labels = arrays["labels"]
    return {key: map_2d(arrays[key], labels, float(arrays[f"{key}_spread"]))
            for key in PANELS_KEYS}


def plot_embedding(maps: dict[str, EmbeddingMap], title: str, path: Path,
                   classes: Sequence[str] = ()) -> Path:
    """The panels side by side, points coloured by class (a legend with the class names),
    each titled with its method and class separation."""
    figure = Figure(figsize=(2 * FIGSIZE[0], 1.3 * FIGSIZE[1]))
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(PANELS))
    colours = matplotlib.colormaps["tab10"]
    for axis, (key, name) in zip(axes, PANELS, strict=True):
        found = maps[key]
        for label in np.unique(found.labels):
            chosen = found.labels == label
            text = classes[int(label)] if 0 <= int(label) < len(classes) else str(int(label))
            axis.scatter(found.xy[chosen, 0], found.xy[chosen, 1], s=4, alpha=0.8,
                         linewidths=0, color=colours(int(label) % 10), label=text)
        what = (f"{found.method}: class separation {found.separation:.2f}"
                if not found.method.startswith("none") else
                f"all {len(found.xy)} points coincide (spread {found.spread:.1e}): collapsed")
        axis.set_title(f"{name}\n{what}", fontsize=9)
        axis.set_xticks([])
        axis.set_yticks([])
    n = len(next(iter(maps.values())).xy)
    figure.suptitle(f"{title}: {n} test images' features in 2-D, coloured by class",
                    fontsize=10)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 10), fontsize=8,
                  markerscale=3, frameon=False)
    figure.tight_layout(rect=(0, 0.07, 1, 1))
    return save_figure(figure, path, tight=False)
