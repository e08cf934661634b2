"""The standard evaluation protocol on frozen features: k-NN at two k and a linear probe.

Full train split as the k-NN bank and probe training set, full test split as queries
(the caller chooses the splits; ``eval.protocol=fast``: a fixed subsample of the train
split as the bank, :data:`FAST_BANK`): weighted k-NN (cosine, temperature ``t``) at k=200
(the InstDisc/BYOL monitor) and k=20, and a multinomial logistic regression on
standardised features. Every figure is an accuracy in [0, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from nocollapse.errors import ConfigError, check_positive
from nocollapse.evaluate.knn import knn_accuracies
from nocollapse.evaluate.linear_probe import linear_probe
from nocollapse.evaluate.progress import QUIET, EvalProgress
from nocollapse.runio.records import ProtocolRecord


@dataclass(frozen=True)
class Protocol:
    """What the standard evaluation measures; part of every cache key."""

    knn_k: Sequence[int] = (200, 20)
    knn_t: float = 0.1
    probe_epochs: int = 100
    linear: bool = True
    # None: the full train split is the k-NN bank (the standard protocol); N: the fast
    # protocol's fixed subsample of N train images (fast_bank_indices)
    bank: int | None = None

    def __post_init__(self) -> None:
        if not self.knn_k:
            raise ConfigError("the protocol needs at least one k-NN k")
        for k in self.knn_k:
            check_positive("knn k", k)
        check_positive("knn temperature", self.knn_t)
        check_positive("probe epochs", self.probe_epochs)
        if self.bank is not None:
            check_positive("k-NN bank", self.bank)

    def key(self) -> ProtocolRecord:
        key: ProtocolRecord = {"knn_k": list(self.knn_k), "knn_t": self.knn_t,
                               "probe_epochs": self.probe_epochs, "linear": self.linear}
        if self.bank is not None:  # the standard protocol's key (and cache entries) unchanged
            key["bank"] = self.bank
        return key


# eval.protocol=fast: 10000 train images (1/6 of Fashion-MNIST's) as the k-NN bank and
# probe set, the same ones for every run and cell (fast_bank_indices); the full test split
# as queries. docs/quality.md#the-fast-protocol has its measured offset.
FAST_BANK = 10000


def fast_bank_indices(train_size: int, bank: int = FAST_BANK) -> torch.Tensor:
    """The fast protocol's bank: ``bank`` indices of a train split of ``train_size`` images,
    a permutation drawn with seed 0 (independent of the run's seed), sorted; all of them
    when the split is no larger."""
    if train_size <= bank:
        return torch.arange(train_size)
    order = torch.randperm(train_size, generator=torch.Generator().manual_seed(0))
    return order[:bank].sort().values


def knn_key(k: int) -> str:
    """The result key of k-NN at ``k``: ``knn_k200``, ``knn_k20``."""
    return f"knn_k{int(k)}"


def evaluate_features(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                      test_y: torch.Tensor, protocol: Protocol | None = None, *,
                      seed: int = 0, progress: EvalProgress = QUIET,
                      label: str = "", overwrite: bool = False) -> dict[str, float]:
    """``{"knn_k200": .., "knn_k20": .., "linear_probe": ..}`` for features (N, D) / (M, D).

    ``progress`` shows each phase, its name prefixed with ``label`` (``"raw pixels: "``).
    ``overwrite``: ``train_x`` is not used after this call and may be changed in place (the
    probe standardises it there: one copy of the features less at the peak).
    """
    protocol = protocol or Protocol()
    accuracies = knn_accuracies(train_x, train_y, test_x, test_y, protocol.knn_k,
                                t=protocol.knn_t, progress=progress, name=f"{label}k-NN")
    result = {knn_key(k): accuracies[int(k)] for k in protocol.knn_k}
    if protocol.linear:
        with torch.random.fork_rng():
            result["linear_probe"] = linear_probe(train_x, train_y, test_x, test_y,
                                                  epochs=protocol.probe_epochs, seed=seed,
                                                  progress=progress,
                                                  name=f"{label}linear probe",
                                                  overwrite=overwrite)
    return result
