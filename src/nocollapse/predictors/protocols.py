"""What the learner needs from a predictor beyond ``forward``: typed, checked with isinstance."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from nocollapse.predictors.correlation import CorrelationEstimate


@runtime_checkable
class MatrixPredictor(Protocol):
    """A linear predictor: ``p = z Wp^T`` with ``Wp = matrix()`` of shape ``(d, d)``."""

    def matrix(self) -> torch.Tensor: ...


@runtime_checkable
class CorrelationPredictor(Protocol):
    """A predictor that keeps its own running ``F_hat`` (DirectPred, DirectCopy, closed-form).

    ``update_correlation(z)`` is called on training steps only, with the detached
    outputs of both views; ``correlation`` holds the estimate.
    """

    correlation: CorrelationEstimate

    def update_correlation(self, z: torch.Tensor) -> None: ...

    def matrix(self) -> torch.Tensor: ...
