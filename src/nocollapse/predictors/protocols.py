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

    ``update_correlation(z1, z2)`` is called on training steps only, with the detached
    outputs of the two views (``(B, d)`` each); ``correlation`` holds the estimate.
    ``update`` says when: ``"before"`` the predictor is applied to the step's batch,
    ``"after"`` after it and the loss; ``"each-view"``: the learner calls
    ``fold_view(z, last)`` per view instead, and predicts that view with the matrix it
    returns.
    """

    correlation: CorrelationEstimate
    update: str

    def update_correlation(self, *views: torch.Tensor) -> None: ...

    def matrix(self) -> torch.Tensor: ...
