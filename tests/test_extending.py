"""docs/extending.md: a predictor with an option, a spectral kind, a loss and a data set added
from outside the package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from nocollapse.data import DATASETS, DatasetEntry, ImageDataset, load_dataset, register_dataset
from nocollapse.errors import ConfigError, check_nonnegative
from nocollapse.losses import LOSSES, Direction, register_loss
from nocollapse.methods import SiameseLearner, learner_config
from nocollapse.predictors import (
    PREDICTORS,
    Option,
    PredictorEntry,
    SpectralPredictor,
    build_predictor,
    register_predictor,
    spectral_entry,
)
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


def diagonal_matrix(F: torch.Tensor, *, power: float) -> torch.Tensor:
    """The spectral kind of docs/extending.md: ``Wp = diag(F_jj / max_j F_jj)^power``."""
    d = F.diagonal().clamp_min(0.0)
    return torch.diag((d / d.max().clamp_min(1e-12)).pow(power))


def _mean_squared(d: Direction) -> torch.Tensor:
    return (d.p - d.target).pow(2).mean()


def _toy_images(root: object, split: str) -> ImageDataset:
    images = torch.full((8, 1, 8, 8), 7 if split == "train" else 9, dtype=torch.uint8)
    return ImageDataset("toy", images, torch.arange(8) % 2, ["a", "b"])


@pytest.fixture
def registered() -> Iterator[None]:
    register_predictor("scaled", PredictorEntry(
        lambda dim, hidden_dim, scale: ScaledIdentity(scale), "p = scale * z",
        options={"scale": Option(float, "the factor", 1.0, _check_scale)}))
    register_predictor("diagonal", spectral_entry(
        diagonal_matrix, "diag(F_hat) over its largest entry, to the power `power`",
        {"power": Option(float, "the exponent (0.5: DirectPred's root)", 0.5,
                         check_nonnegative)},
        correlation="joint", update="after"))
    register_loss("mean-squared", _mean_squared, "mean over elements of (p - z)^2")
    register_dataset("toy", DatasetEntry(_toy_images, "8x1", "eight constant images"))
    try:
        yield
    finally:
        del PREDICTORS["scaled"], PREDICTORS["diagonal"], LOSSES["mean-squared"]
        del DATASETS["toy"]


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


def test_a_registered_spectral_kind_trains_inside_a_preset(registered) -> None:
    # the isoloss preset with another spectral kind: the kind's defaults, not the preset's
    # closed-form options (alpha would be refused by name)
    config = learner_config("isoloss", predictor="diagonal", proj_hidden_dim=8, proj_dim=4)
    assert config.predictor_options == {}
    torch.manual_seed(0)
    learner = SiameseLearner(config, in_channels=1, image_size=8)
    assert isinstance(learner.predictor, SpectralPredictor)
    assert learner.tracker is None  # the entry's kind keeps F_hat itself
    x1, x2 = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    initial = learner.predictor_matrix()
    out = learner(x1, x2)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    # update=after (its entry's default): the step used the initial matrix, then F_hat (the
    # first batch, both views joint) was folded in and Wp rebuilt from it
    torch.testing.assert_close(out.p1, out.z1 @ initial.T)
    both = torch.cat([out.z1, out.z2])
    torch.testing.assert_close(learner.correlation(), both.T @ both / 8)
    torch.testing.assert_close(learner.predictor_matrix(),
                               diagonal_matrix(learner.correlation().double(), power=0.5).float())
    # the shared options (update, freq, ...) and its own one; another kind's is refused
    other = build_predictor("diagonal", 4, power=1.0, update="before", freq=2)
    assert isinstance(other, SpectralPredictor) and other.options == {"power": 1.0}
    with pytest.raises(ConfigError, match=r"'predictor_options\.alpha'"):
        learner_config("isoloss", predictor="diagonal", alpha=1.0)
    with pytest.raises(ConfigError, match="power=-1"):
        build_predictor("diagonal", 4, power=-1.0)
    cli = load_config(None, ["method=isoloss", "learner.predictor=diagonal", "learner.power=1"])
    assert cli.learner.predictor_options == {"power": 1}


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
