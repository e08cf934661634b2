"""k-NN monitor and linear probe: near-perfect on separable clusters, chance on random labels."""

from __future__ import annotations

import pytest
import torch

from _numeric import forward_error_bound
from nocollapse.data.presets import normalize, preset_for_images
from nocollapse.errors import ConfigError
from nocollapse.evaluate import extract_features, knn_accuracy, knn_predict, linear_probe
from nocollapse.evaluate.knn import knn_accuracies


def _clusters(n_per_class: int, classes: int, dim: int, spread: float, seed: int):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, dim, generator=generator) * 3
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    features = centres[labels] + spread * torch.randn(len(labels), dim, generator=generator)
    return features, labels


def _random_labels(n_train: int, n_test: int, dim: int, seed: int):
    """Gaussian features with 4 random labels, drawn in this order from one generator."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train, dim, generator=generator)
    y = torch.randint(0, 4, (n_train,), generator=generator)
    x_test = torch.randn(n_test, dim, generator=generator)
    y_test = torch.randint(0, 4, (n_test,), generator=generator)
    return x, y, x_test, y_test


def test_knn_on_separable_clusters_is_near_perfect() -> None:
    x, y = _clusters(60, 5, 16, 0.3, seed=0)
    x_test, y_test = _clusters(20, 5, 16, 0.3, seed=0)  # same centres, new noise below
    x_test = x_test + 0.05 * torch.randn(x_test.shape, generator=torch.Generator().manual_seed(1))
    assert knn_accuracy(x, y, x_test, y_test, k=20, t=0.1) > 0.98


def test_knn_on_random_labels_is_near_chance() -> None:
    x, y, x_test, y_test = _random_labels(600, 400, 16, seed=0)
    assert abs(knn_accuracy(x, y, x_test, y_test, k=50) - 0.25) < 0.08


def test_knn_weights_close_neighbours_more() -> None:
    # One very close neighbour of class 1 outweighs two far ones of class 0 at small t.
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.05, 1.0]])
    labels = torch.tensor([1, 0, 0])
    query = torch.tensor([[1.0, 0.4]])
    assert knn_predict(bank, labels, query, k=3, t=0.05).item() == 1
    # At a huge temperature the vote becomes a plain majority.
    assert knn_predict(bank, labels, query, k=3, t=100.0).item() == 0


def test_knn_refuses_mismatched_dimensions() -> None:
    with pytest.raises(ConfigError, match="D=3"):
        knn_accuracy(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long), torch.zeros(2, 3),
                     torch.zeros(2, dtype=torch.long))


def test_linear_probe_on_separable_clusters_is_near_perfect() -> None:
    x, y = _clusters(50, 4, 8, 0.5, seed=2)
    x_test, y_test = _clusters(25, 4, 8, 0.5, seed=2)
    assert linear_probe(x, y, x_test + 0.01, y_test, epochs=50) > 0.97


def test_linear_probe_on_random_labels_is_near_chance() -> None:
    x, y, x_test, y_test = _random_labels(400, 400, 8, seed=3)
    assert abs(linear_probe(x, y, x_test, y_test, epochs=50) - 0.25) < 0.08


def test_linear_probe_refuses_nonpositive_epochs() -> None:
    x, y = _clusters(5, 2, 3, 0.1, seed=0)
    with pytest.raises(ConfigError, match="epochs"):
        linear_probe(x, y, x, y, epochs=0)


@pytest.mark.numerical
def test_extract_features_batches_like_one_pass() -> None:
    images = torch.randint(0, 256, (10, 1, 8, 8), dtype=torch.uint8)
    encode = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5))
    whole = extract_features(encode, images, batch_size=100)
    batched = extract_features(encode, images, batch_size=3)
    assert whole.shape == (10, 5)
    # a batch of 3 and one of 10 may take different matmul kernels: each row within
    # forward_error_bound (gamma_65 |W| |x| + |b|) of the exact one
    bound = forward_error_bound(encode, normalize(images, preset_for_images(images)))
    assert bool(((whole - batched).abs() <= 2 * bound).all())


def test_linear_probe_in_place_gives_the_same_accuracy_and_leaves_input_alone_otherwise(
        ) -> None:
    x, y, x_test, y_test = _random_labels(300, 100, 6, seed=4)
    x = x + 3.0  # an offset, so that standardising changes every value
    before = x.clone()
    kept = linear_probe(x, y, x_test, y_test, epochs=20)
    assert torch.equal(x, before)  # the default never touches the caller's features
    # the same elementwise operations in place: the same accuracy, and the features changed
    assert linear_probe(x, y, x_test, y_test, epochs=20, overwrite=True) == kept
    assert not torch.equal(x, before)


@pytest.mark.parametrize("row, value", [(0, float("nan")), (4096, float("inf")),
                                        (9000, float("-inf"))])
def test_knn_refuses_a_non_finite_feature_in_any_block_of_rows(row: int, value: float) -> None:
    # the finiteness check runs 4096 rows at a time: a bad value in any block is found
    bank = torch.randn(9001, 4)
    bank[row, 2] = value
    labels = torch.zeros(9001, dtype=torch.long)
    with pytest.raises(ConfigError, match="train features hold NaN or infinite"):
        knn_accuracies(bank, labels, torch.randn(3, 4), torch.zeros(3, dtype=torch.long), [5])
