"""Losses: cosine, BYOL's normalised L2, the theory's L2, IsoLoss, and symmetrisation."""

from nocollapse.losses.isoloss import isoloss_cosine, isoloss_l2
from nocollapse.losses.similarity import cosine_loss, l2_loss, normalized_l2_loss
from nocollapse.losses.symmetric import symmetrised

# Names the learner accepts; "isoloss-cosine" is the Iso form of "normalized-l2" (2 - 2 cos).
LOSSES = ("l2", "normalized-l2", "cosine", "isoloss-l2", "isoloss-cosine")

__all__ = ["LOSSES", "cosine_loss", "isoloss_cosine", "isoloss_l2", "l2_loss",
           "normalized_l2_loss", "symmetrised"]
