"""Weighted k-nearest-neighbour classifier on frozen features (InstDisc / BYOL monitor).

Each test feature votes with its ``k`` most cosine-similar training features,
each neighbour weighted by ``exp(similarity / t)`` (computed as ``exp((similarity -
max) / t)``, the same vote without overflow) (Wu et al. 2018, the monitor
used by the BYOL/SimSiam reimplementations); the class with the largest summed
weight wins.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F  # noqa: N812

from nocollapse.errors import ConfigError, check_positive
from nocollapse.evaluate.progress import QUIET, EvalProgress


def knn_predict(train_features: torch.Tensor, train_labels: torch.Tensor,
                test_features: torch.Tensor, *, k: int = 200, t: float = 0.1,
                num_classes: int | None = None, batch_size: int = 1024) -> torch.Tensor:
    """Predicted labels (M,) int64 for ``test_features`` (M, D).

    ``train_features`` (N, D) and ``train_labels`` (N,) int64 in ``[0, num_classes)``.
    Features are l2-normalised here, so any scale works. ``k`` is clipped to N.
    Test features are processed ``batch_size`` at a time to bound memory at
    ``batch_size * N`` similarities.
    """
    _check_shapes(train_features, train_labels, test_features)
    check_positive("knn_k", k)
    check_positive("knn_t", t)
    if num_classes is None:
        num_classes = int(train_labels.max()) + 1
    k = min(int(k), train_features.shape[0])
    return torch.cat([_vote(weights, neighbours, num_classes) for _, weights, neighbours
                      in _neighbours(train_features, train_labels, test_features, k, t,
                                     batch_size)])


def knn_accuracies(train_features: torch.Tensor, train_labels: torch.Tensor,
                   test_features: torch.Tensor, test_labels: torch.Tensor, ks: Sequence[int],
                   *, t: float = 0.1, batch_size: int = 1024,
                   progress: EvalProgress = QUIET, name: str = "k-NN") -> dict[int, float]:
    """``{k: accuracy}`` for several ``k`` from one similarity pass (the costly part).

    The same as :func:`knn_accuracy` for each k: the top-``max(ks)`` neighbours are
    found once and each k votes with its first k of them. ``progress`` shows the queries.
    """
    _check_shapes(train_features, train_labels, test_features)
    _check_test_labels(test_features, test_labels)
    if not ks:
        raise ConfigError("knn_accuracies needs at least one k")
    for k in ks:
        check_positive("knn_k", k)
    check_positive("knn_t", t)
    num_classes = int(max(int(train_labels.max()), int(test_labels.max()))) + 1
    clipped = {int(k): min(int(k), train_features.shape[0]) for k in ks}
    correct = dict.fromkeys(clipped, 0)
    with progress.phase(name, test_features.shape[0], "queries") as phase:
        for start, weights, neighbours in _neighbours(train_features, train_labels,
                                                      test_features, max(clipped.values()), t,
                                                      batch_size):
            truth = test_labels[start:start + len(weights)].to(weights.device)
            for k, used in clipped.items():
                predicted = _vote(weights[:, :used], neighbours[:, :used], num_classes)
                correct[k] += int((predicted == truth).sum())
            phase.advance(len(weights))
    return {k: correct[k] / test_features.shape[0] for k in clipped}


def knn_accuracy(train_features: torch.Tensor, train_labels: torch.Tensor,
                 test_features: torch.Tensor, test_labels: torch.Tensor, *, k: int = 200,
                 t: float = 0.1, batch_size: int = 1024) -> float:
    """Fraction in [0, 1] of ``test_labels`` (M,) that :func:`knn_predict` gets right."""
    _check_test_labels(test_features, test_labels)
    num_classes = int(max(int(train_labels.max()), int(test_labels.max()))) + 1
    predicted = knn_predict(train_features, train_labels, test_features, k=k, t=t,
                            num_classes=num_classes, batch_size=batch_size)
    return float((predicted.cpu() == test_labels.cpu()).float().mean())


def _neighbours(train_features: torch.Tensor, train_labels: torch.Tensor,
                test_features: torch.Tensor, k: int, t: float, batch_size: int
                ) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """Per batch of queries: its first index, then the ``exp(similarity / t)`` weights and
    the labels of its ``k`` most cosine-similar training features, most similar first.

    The bank is not copied normalised (60000 x 2048 float32 features: 0.5 GB more at the
    peak): each similarity row is divided by the bank's norms instead, as F.normalize
    would (norms clamped at 1e-12)."""
    bank = train_features.float()
    inverse_norms = bank.norm(dim=1).clamp_min(1e-12).reciprocal()
    labels = train_labels.to(bank.device)
    for start in range(0, test_features.shape[0], batch_size):
        query = F.normalize(test_features[start:start + batch_size].float().to(bank.device), dim=1)
        similarity, index = (query @ bank.T).mul_(inverse_norms).topk(k, dim=1)
        # exp((s - s_max) / t): the same vote (a common factor per query), and no float32
        # overflow to inf for a small t (exp(1 / 0.01) already is inf)
        yield start, ((similarity - similarity[:, :1]) / t).exp(), labels[index]


def _vote(weights: torch.Tensor, neighbours: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The class with the largest summed neighbour weight, per query row."""
    scores = torch.zeros(weights.shape[0], num_classes, device=weights.device)
    scores.scatter_add_(1, neighbours, weights)
    return scores.argmax(dim=1)


def _check_test_labels(test_features: torch.Tensor, test_labels: torch.Tensor) -> None:
    if test_labels.shape != test_features.shape[:1]:
        raise ConfigError(f"test_labels has shape {tuple(test_labels.shape)}; expected "
                          f"({test_features.shape[0]},), one label per test feature")


def _check_shapes(train_features: torch.Tensor, train_labels: torch.Tensor,
                  test_features: torch.Tensor) -> None:
    if train_features.dim() != 2 or test_features.dim() != 2:
        raise ConfigError(f"features must be 2-D (N, D); got {tuple(train_features.shape)} and "
                          f"{tuple(test_features.shape)}")
    if train_features.shape[1] != test_features.shape[1]:
        raise ConfigError(f"train features have D={train_features.shape[1]} but test features "
                          f"D={test_features.shape[1]}; encode both with the same model")
    for name, features in (("train", train_features), ("test", test_features)):
        if not _all_finite(features):
            raise ConfigError(f"the {name} features hold NaN or infinite values: the encoder "
                              "that produced them is not finite (diverged or damaged weights)")
    if train_labels.shape != train_features.shape[:1] or train_features.shape[0] == 0:
        raise ConfigError(f"train_labels has shape {tuple(train_labels.shape)}; expected "
                          f"({train_features.shape[0]},) with N > 0")
    if int(train_labels.min()) < 0:
        raise ConfigError("train_labels contain negative (unlabeled) entries; k-NN needs a "
                          "labeled training split (drop the -1 labels first)")


def _all_finite(features: torch.Tensor, rows: int = 4096) -> bool:
    """``isfinite(features).all()`` a block of rows at a time: on the whole (60000, 2048)
    bank at once its temporaries took 0.84 GB, the evaluation's peak memory."""
    return all(bool(torch.isfinite(features[start:start + rows]).all())
               for start in range(0, features.shape[0], rows))
