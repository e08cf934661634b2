"""``LOSSES``: every training loss by name, as one function of a :class:`Direction`.

A learner computes each view direction's inputs once and calls ``LOSSES[name].fn``
on them; :func:`register_loss` adds a loss from outside the package
(see docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from nocollapse.errors import ConfigError
from nocollapse.losses.isoloss import isoloss_cosine, isoloss_l2
from nocollapse.losses.similarity import cosine_loss, l2_loss, normalized_l2_loss


class Direction(NamedTuple):
    """One direction of a Siamese loss: view ``a`` predicts view ``b``.

    ``z``: online projector output of ``a`` (``(B, d)``); ``p``: its prediction;
    ``target``: the target branch's output for ``b`` (detached by the learner unless
    the stop-gradient is ablated); ``Wp``: the predictor matrix, for losses whose
    entry sets ``needs_matrix`` (else ``None``).
    """

    z: torch.Tensor
    p: torch.Tensor
    target: torch.Tensor
    Wp: torch.Tensor | None = None


@dataclass(frozen=True)
class LossEntry:
    """A loss: ``fn(direction) -> scalar`` and what it asks of the learner.

    ``needs_matrix``: the learner passes the predictor matrix ``Wp``;
    ``needs_spectral``: only a closed-form (spectral) predictor makes sense with it;
    ``detaches_target``: the loss stops the target's gradient itself, so the
    no-stop-gradient ablation would change nothing;
    ``gain``: its gradient with respect to ``p`` over the theory's, ``1/2 ||p - z||^2``
    (``normalised=False``) or ``1 - cos(p, z)`` (``normalised=True``: a gradient that
    carries ``1 / (|p| |z|)``); both read by ``eta / eta_c``
    (docs/theory.md#theory-in-a-run).
    """

    fn: Callable[[Direction], torch.Tensor]
    help: str
    needs_matrix: bool = False
    needs_spectral: bool = False
    detaches_target: bool = False
    gain: float = 1.0
    normalised: bool = False


def _isoloss_cosine(d: Direction) -> torch.Tensor:
    if d.Wp is None:
        raise ConfigError("isoloss-cosine needs the predictor matrix Wp")
    return isoloss_cosine(d.z, d.target, d.p, d.Wp)


# "isoloss-cosine" is the Iso form of "normalized-l2" (2 - 2 cos).
LOSSES: dict[str, LossEntry] = {
    "l2": LossEntry(lambda d: l2_loss(d.p, d.target), "the theory's mean ||p - z||^2",
                    gain=2.0),
    "normalized-l2": LossEntry(lambda d: normalized_l2_loss(d.p, d.target),
                               "BYOL's 2 - 2 cos(p, z)", gain=2.0, normalised=True),
    "cosine": LossEntry(lambda d: cosine_loss(d.p, d.target), "SimSiam's -cos(p, z)",
                        normalised=True),
    "isoloss-l2": LossEntry(lambda d: isoloss_l2(d.z, d.target, d.p),
                            "IsoLoss surrogate of l2", needs_spectral=True,
                            detaches_target=True, gain=2.0),
    "isoloss-cosine": LossEntry(_isoloss_cosine, "IsoLoss surrogate of normalized-l2",
                                needs_matrix=True, needs_spectral=True, detaches_target=True,
                                gain=2.0, normalised=True),
}


def register_loss(name: str, fn: Callable[[Direction], torch.Tensor], help: str,
                  **flags: Any) -> LossEntry:
    """Add loss ``name``; ``flags`` are :class:`LossEntry`'s switches (``needs_*``, ``gain``)."""
    if name in LOSSES:
        raise ConfigError(f"loss {name!r} is already registered")
    entry = LossEntry(fn, help, **flags)
    LOSSES[name] = entry
    return entry
