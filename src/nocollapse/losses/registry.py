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

from nocollapse.diagnostics.loss_definitions import DEFINITIONS, LossDefinition
from nocollapse.errors import ConfigError
from nocollapse.losses.isoloss import isoloss_cosine, isoloss_l2
from nocollapse.losses.similarity import cosine_loss, l2_loss, normalized_l2_loss
from nocollapse.plugins import PluginRegistry


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
    ``gain``: its gradient with respect to ``p`` over the theory's (``scale = 1/2`` in
    the loss table, :mod:`nocollapse.diagnostics.loss_definitions`), and ``normalised``:
    a gradient that carries ``1 / (|p| |z|)``; both read by ``eta / eta_c``
    (docs/theory.md#theory-in-a-run);
    ``base``: the loss it is a surrogate of, which an ablation that removes what this one
    needs falls back to (IsoLoss without a predictor or stop-gradient);
    ``definition``: its row of the loss table (built-in losses; ``None`` for others).
    """

    fn: Callable[[Direction], torch.Tensor]
    help: str
    needs_matrix: bool = False
    needs_spectral: bool = False
    detaches_target: bool = False
    gain: float = 1.0
    normalised: bool = False
    base: str | None = None
    definition: LossDefinition | None = None


def _defined(name: str, fn: Callable[[Direction], torch.Tensor], who: str,
             **flags: bool) -> LossEntry:
    """The entry of the loss table's ``name``: help, gain, normalised and base from its row."""
    row = DEFINITIONS[name]
    help = who if row.surrogate_of else f"{who}: {row.formula}"
    return LossEntry(fn, help, gain=row.gain, normalised=row.normalised,
                     base=row.surrogate_of, definition=row, **flags)


def _isoloss_cosine(d: Direction) -> torch.Tensor:
    if d.Wp is None:
        raise ConfigError("isoloss-cosine needs the predictor matrix Wp")
    return isoloss_cosine(d.z, d.target, d.p, d.Wp)


LOSSES: PluginRegistry[LossEntry] = PluginRegistry({
    "l2": _defined("l2", lambda d: l2_loss(d.p, d.target), "tian2021's L2, twice the theory's"),
    "normalized-l2": _defined("normalized-l2", lambda d: normalized_l2_loss(d.p, d.target),
                              "BYOL's"),
    "cosine": _defined("cosine", lambda d: cosine_loss(d.p, d.target), "SimSiam's"),
    "isoloss-l2": _defined("isoloss-l2", lambda d: isoloss_l2(d.z, d.target, d.p),
                           "IsoLoss surrogate of l2", needs_spectral=True,
                           detaches_target=True),
    "isoloss-cosine": _defined("isoloss-cosine", _isoloss_cosine,
                               "IsoLoss surrogate of normalized-l2", needs_matrix=True,
                               needs_spectral=True, detaches_target=True),
})


def register_loss(name: str, fn: Callable[[Direction], torch.Tensor], help: str,
                  **flags: Any) -> LossEntry:
    """Add loss ``name``; ``flags`` are :class:`LossEntry`'s switches (``needs_*``, ``gain``)."""
    if name in LOSSES:
        raise ConfigError(f"loss {name!r} is already registered")
    entry = LossEntry(fn, help, **flags)
    LOSSES[name] = entry
    return entry
