"""Losses: cosine, BYOL's normalised L2, the theory's L2, IsoLoss, and symmetrisation."""

from nocollapse.losses.isoloss import isoloss_cosine, isoloss_l2
from nocollapse.losses.registry import LOSSES, Direction, LossEntry, register_loss
from nocollapse.losses.similarity import cosine_loss, l2_loss, normalized_l2_loss
from nocollapse.losses.symmetric import symmetrised

__all__ = ["LOSSES", "Direction", "LossEntry", "cosine_loss", "isoloss_cosine", "isoloss_l2",
           "l2_loss", "normalized_l2_loss", "register_loss", "symmetrised"]
