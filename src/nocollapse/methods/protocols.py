"""The contract between the training loop and a learner, as a ``typing.Protocol``.

:class:`~nocollapse.methods.SiameseLearner` satisfies it; so must anything a
``learner_factory`` returns (tests use small stand-ins). The loop calls these
methods directly: there is no optional method.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import torch

from nocollapse.methods.learner import StepOutput


@runtime_checkable
class Learner(Protocol):
    """An ``nn.Module`` that trains on two views and exposes what the loop and monitor read."""

    training: bool

    def __call__(self, x1: torch.Tensor, x2: torch.Tensor) -> StepOutput: ...

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features, for k-NN and linear probes."""
        ...

    def update_target(self, progress: float) -> float:
        """After each optimiser step (``progress`` in [0, 1]); returns the EMA ``tau``."""
        ...

    def parameter_groups(self, weight_decay: float, predictor_lr_scale: float = 1.0
                         ) -> list[dict[str, object]]:
        """Optimiser parameter groups (optional key ``lr_scale``)."""
        ...

    def predictor_matrix(self) -> torch.Tensor | None:
        """``Wp`` (``(d, d)``) or ``None`` when the predictor is not linear."""
        ...

    def correlation(self) -> torch.Tensor | None:
        """The running ``F_hat`` (``(d, d)``) or ``None``."""
        ...

    # the nn.Module methods the loop relies on
    def parameters(self, recurse: bool = True) -> Iterator[torch.nn.Parameter]: ...

    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True,
                        assign: bool = False) -> object: ...

    def train(self, mode: bool = True) -> object: ...

    def eval(self) -> object: ...

    def to(self, *args: Any, **kwargs: Any) -> object: ...
