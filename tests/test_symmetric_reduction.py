"""Each preset combines the two view directions as its original's code does.

Originals, written here from their definitions: facebookresearch/simsiam's main_simsiam.py
averages the two negative cosines, ``L = -(cos(p1, z2).mean() + cos(p2, z1).mean()) * 0.5``;
BYOL (and luckmatters' and implicit-var-reg's trainers) sums the two directions' losses.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional

from nocollapse.errors import ConfigError
from nocollapse.methods import SiameseLearner, learner_config


def _step(method: str, **overrides: object) -> tuple[SiameseLearner, object]:
    torch.manual_seed(0)
    learner = SiameseLearner(learner_config(method, proj_hidden_dim=32, proj_dim=8,
                                            pred_hidden_dim=8, **overrides), 1, 16)
    gen = torch.Generator().manual_seed(1)
    x1, x2 = (torch.randn(16, 1, 16, 16, generator=gen) for _ in range(2))
    return learner, learner(x1, x2)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return functional.cosine_similarity(a, b, dim=-1).mean()


def test_simsiam_averages_the_two_directions() -> None:
    learner, out = _step("simsiam")
    assert learner.config.symmetric_reduction == "mean"
    expected = -(_cos(out.p1, out.z2) + _cos(out.p2, out.z1)) * 0.5
    # float32 cosines of 8-wide vectors: a few ulps of 1
    torch.testing.assert_close(out.loss.detach(), expected, rtol=0, atol=1e-6)
    assert learner.loss_gain() == (1.0, True)  # one direction's gradient on average


def test_byol_sums_the_two_directions_and_the_option_stays() -> None:
    learner, out = _step("byol")
    assert learner.config.symmetric_reduction == "sum"
    expected = (2 - 2 * _cos(out.p1, out.t2)) + (2 - 2 * _cos(out.p2, out.t1))
    torch.testing.assert_close(out.loss.detach(), expected, rtol=0, atol=1e-5)
    assert learner.loss_gain() == (4.0, True)
    summed, out_sum = _step("simsiam", symmetric_reduction="sum")
    assert summed.loss_gain() == (2.0, True)
    torch.testing.assert_close(out_sum.loss.detach(),
                               -(_cos(out_sum.p1, out_sum.z2) + _cos(out_sum.p2, out_sum.z1)),
                               rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="symmetric_reduction"):
        learner_config("byol", symmetric_reduction="max")
