"""Each preset combines the two view directions as its original's code does.

Originals, written here from their definitions: facebookresearch/simsiam's main_simsiam.py
averages the two negative cosines, ``L = -(cos(p1, z2).mean() + cos(p2, z1).mean()) * 0.5``;
BYOL (and luckmatters' and implicit-var-reg's trainers) sums the two directions' losses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch.nn import functional

from _cli import TINY, overrides
from nocollapse.cli.main import main
from nocollapse.errors import ConfigError
from nocollapse.methods import SiameseLearner, learner_config
from nocollapse.rundir.checkpoint import load_checkpoint
from nocollapse.train.config import CPU_DEFAULT, TrainConfig


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


def _trained(tmp_path: Path, name: str, *settings: str) -> dict[str, Any]:
    out = tmp_path / name
    assert main(["train", *overrides(TINY, "max_steps=6", *settings), "--out", str(out)]) == 0
    return load_checkpoint(out)


def test_the_mean_at_twice_the_lr_and_half_the_decay_takes_the_summed_steps(
        tmp_path: Path) -> None:
    """The CPU recipe's switch from the sum (lr 0.06, decay 5e-4) to SimSiam's mean.

    Under SGD with momentum, halving the loss while doubling the lr and halving the decay
    scales every gradient, decay term and momentum buffer by exact powers of two, so the
    parameters agree bit for bit (floats scale by 2 without rounding); a change to how
    either reduction or the optimiser treats the loss would break the equality.
    """
    summed = _trained(tmp_path, "sum", "learner.symmetric_reduction=sum", "optim.lr=0.06",
                      "optim.weight_decay=5e-4")
    averaged = _trained(tmp_path, "mean", "learner.symmetric_reduction=mean",
                        "optim.lr=0.12", "optim.weight_decay=2.5e-4")
    assert summed["step"] == averaged["step"] == 6
    state_sum, state_mean = summed["model"], averaged["model"]
    assert state_sum.keys() == state_mean.keys()
    for key, value in state_sum.items():
        assert torch.equal(value, state_mean[key]), key
    # the same run at the old lr with the mean does take different steps
    half = _trained(tmp_path, "half", "learner.symmetric_reduction=mean", "optim.lr=0.06",
                    "optim.weight_decay=5e-4")
    assert any(not torch.equal(value, half["model"][key])
               for key, value in state_sum.items() if value.is_floating_point())


def test_the_cpu_recipe_averages_as_simsiam_does() -> None:
    config = TrainConfig.from_dict(CPU_DEFAULT)
    assert config.method == "simsiam" and config.learner.symmetric_reduction == "mean"
    assert (config.optim.name, config.optim.lr, config.optim.weight_decay) == (
        "sgd", 0.12, 2.5e-4)
