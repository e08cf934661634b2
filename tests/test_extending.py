"""docs/extending.md: a predictor with an option, a loss and a data set added from outside."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from nocollapse.data import DATASETS, DatasetEntry, ImageDataset, load_dataset, register_dataset
from nocollapse.errors import ConfigError
from nocollapse.losses import LOSSES, Direction, register_loss
from nocollapse.methods import SiameseLearner, learner_config
from nocollapse.predictors import PREDICTORS, Option, build_predictor, register_predictor
from nocollapse.train.config import load_config


class ScaledIdentity(nn.Module):
    """The toy predictor of docs/extending.md: ``p = scale * z``."""

    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def matrix(self) -> torch.Tensor:
        return torch.eye(1) * self.scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.scale * z


def _check_scale(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name}={value} must be positive")


def _mean_squared(d: Direction) -> torch.Tensor:
    return (d.p - d.target).pow(2).mean()


def _toy_images(root: object, split: str) -> ImageDataset:
    images = torch.full((8, 1, 8, 8), 7 if split == "train" else 9, dtype=torch.uint8)
    return ImageDataset("toy", images, torch.arange(8) % 2, ["a", "b"])


@pytest.fixture
def registered() -> Iterator[None]:
    register_predictor("scaled", lambda dim, hidden_dim, scale=1.0: ScaledIdentity(scale),
                       "p = scale * z",
                       options={"scale": Option(float, "the factor", 1.0, _check_scale)})
    register_loss("mean-squared", _mean_squared, "mean over elements of (p - z)^2")
    register_dataset("toy", DatasetEntry(_toy_images, "8x1", "eight constant images"))
    try:
        yield
    finally:
        del PREDICTORS["scaled"], LOSSES["mean-squared"], DATASETS["toy"]


def test_a_registered_predictor_and_loss_train_through_the_public_config(registered) -> None:
    config = learner_config("simsiam", predictor="scaled", scale=0.5, loss="mean-squared",
                            proj_hidden_dim=8, proj_dim=4)
    assert config.predictor_options == {"scale": 0.5}  # the flat option found its predictor
    learner = SiameseLearner(config, in_channels=1, image_size=8)
    assert isinstance(learner.predictor, ScaledIdentity) and learner.predictor.scale == 0.5
    x1, x2 = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    out = learner(x1, x2)
    # the simsiam preset averages the two directions (facebookresearch/simsiam: x 0.5)
    expected = 0.5 * (((0.5 * out.z1 - out.z2) ** 2).mean()
                      + ((0.5 * out.z2 - out.z1) ** 2).mean())
    torch.testing.assert_close(out.loss, expected)
    # not a CorrelationPredictor: the learner keeps F_hat itself, and it saw the batch
    assert learner.tracker is not None and int(learner.tracker.updates) == 1


def test_a_registered_option_is_checked_and_named(registered) -> None:
    with pytest.raises(ConfigError, match=r"predictor_options\.scale=-1"):
        learner_config("simsiam", predictor="scaled", scale=-1.0)
    with pytest.raises(ConfigError, match="did you mean scale"):
        build_predictor("scaled", 4, scal=2.0)
    with pytest.raises(ConfigError, match="already registered"):
        register_loss("mean-squared", _mean_squared, "twice")


def test_a_registered_data_set_and_predictor_load_through_a_train_config(registered) -> None:
    config = load_config(None, ["data.name=toy", "learner.predictor=scaled",
                                "learner.scale=2", "learner.loss=mean-squared"])
    assert config.learner.predictor_options == {"scale": 2}
    assert int(load_dataset("toy", split="test").images.max()) == 9
    with pytest.raises(ConfigError, match=r"unknown data.name 'toi' \(did you mean 'toy'"):
        load_config(None, ["data.name=toi"])
