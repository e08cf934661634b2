"""The standard protocol, its cached baselines and the supervised bound, on tiny data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nocollapse.data import ImageDataset, load_dataset
from nocollapse.errors import ConfigError
from nocollapse.evaluate import (
    BaselineSetup,
    Protocol,
    cache_dir,
    cached,
    evaluate_features,
    knn_accuracies,
    knn_accuracy,
    measure_baselines,
)
from nocollapse.evaluate import baselines as baselines_module


def _clusters(n: int, seed: int, shuffle: bool = False):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, 12, generator=torch.Generator().manual_seed(99)) * 4
    labels = torch.arange(4).repeat(n // 4)
    features = centres[labels] + 0.2 * torch.randn(len(labels), 12, generator=generator)
    if shuffle:
        labels = labels[torch.randperm(len(labels), generator=generator)]
    return features, labels


def test_protocol_is_perfect_on_separable_features_and_chance_on_shuffled_labels() -> None:
    x, y = _clusters(200, seed=0)
    x_test, y_test = _clusters(80, seed=1)
    result = evaluate_features(x, y, x_test, y_test, Protocol(knn_k=(50, 5), probe_epochs=30))
    assert result == {"knn_k50": 1.0, "knn_k5": 1.0, "linear_probe": 1.0}
    x, y = _clusters(400, seed=0, shuffle=True)
    x_test, y_test = _clusters(400, seed=1, shuffle=True)
    shuffled = evaluate_features(x, y, x_test, y_test, Protocol(knn_k=(50,), probe_epochs=30))
    assert all(abs(value - 0.25) < 0.08 for value in shuffled.values()), shuffled


def test_protocol_refuses_no_k_and_bad_temperature() -> None:
    with pytest.raises(ConfigError):
        Protocol(knn_k=())
    with pytest.raises(ConfigError):
        Protocol(knn_t=0.0)


def test_cache_returns_the_stored_value_without_recomputing(tmp_path: Path) -> None:
    calls = []

    def compute() -> dict[str, float]:
        calls.append(1)
        return {"knn_k200": 0.25 * len(calls)}

    key = {"data": "x", "seed": 0}
    first, hit1 = cached("baselines", key, compute)
    second, hit2 = cached("baselines", key, compute)
    assert (first, hit1, second, hit2) == ({"knn_k200": 0.25}, False, {"knn_k200": 0.25}, True)
    assert len(calls) == 1
    assert cached("baselines", {"data": "x", "seed": 1}, compute)[0] == {"knn_k200": 0.5}
    assert str(cache_dir()).startswith(str(tmp_path))  # conftest: never the user's cache


def test_damaged_or_foreign_cache_file_is_recomputed() -> None:
    key = {"data": "y"}
    cached("baselines", key, lambda: {"a": 0.1})
    (path,) = (cache_dir() / "baselines").glob("*.json")
    path.write_text("{not json")
    assert cached("baselines", key, lambda: {"a": 0.2}) == ({"a": 0.2}, False)
    path.write_text(json.dumps({"key": {"data": "other"}, "result": {"a": 0.3}}))
    assert cached("baselines", key, lambda: {"a": 0.4}) == ({"a": 0.4}, False)
    assert not list((cache_dir() / "baselines").glob(".*.tmp"))  # atomic writes leave no temp


@pytest.mark.parametrize("forged", [-3.0, 7.5, 1e308, float("nan"), "0.5", True, None])
def test_a_cached_figure_that_is_not_an_accuracy_is_recomputed_and_said(
        forged: object, capsys: pytest.CaptureFixture) -> None:
    key = {"data": "z"}
    cached("baselines", key, lambda: {"knn_k200": 0.5, "linear_probe": 0.6})
    (path,) = (cache_dir() / "baselines").glob("*.json")
    stored = json.loads(path.read_text())
    stored["result"]["knn_k200"] = forged
    path.write_text(json.dumps(stored))  # NaN as JSON's NaN token, as an editor might leave it
    capsys.readouterr()
    assert cached("baselines", key, lambda: {"knn_k200": 0.25, "linear_probe": 0.5}) == (
        {"knn_k200": 0.25, "linear_probe": 0.5}, False)
    err = capsys.readouterr().err
    assert str(path) in err and "not accuracies in [0, 1]" in err and "computed again" in err
    assert cached("baselines", key, lambda: {"knn_k200": 0.9})[0]["knn_k200"] == 0.25


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.delenv("NOCOLLAPSE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "nocollapse"


def _digits() -> tuple[ImageDataset, ImageDataset]:
    return load_dataset("digits", None, "train"), load_dataset("digits", None, "test")


def test_baselines_order_and_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    train, test = _digits()
    setup = BaselineSetup(seed=0, supervised_steps=60, supervised_batch_size=64)
    protocol = Protocol(knn_k=(20,), probe_epochs=30)
    first = measure_baselines(train, test, setup, protocol)
    assert not any(values["cached"] for values in first.values())
    # digits are nearly separable in pixel space; labels teach the network more than chance
    assert first["raw_pixels"]["knn_k20"] > 0.9
    assert first["supervised"]["linear_probe"] > first["random_init"]["linear_probe"]
    assert first["supervised"]["linear_probe"] > 0.85

    def must_not_train(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached supervised baseline was trained again")

    monkeypatch.setattr(baselines_module, "train_supervised", must_not_train)
    second = measure_baselines(train, test, setup, protocol)
    assert all(values["cached"] for values in second.values())
    assert {k: {m: v for m, v in r.items() if m != "cached"} for k, r in second.items()} == \
        {k: {m: v for m, v in r.items() if m != "cached"} for k, r in first.items()}


def test_baseline_cache_key_includes_the_images() -> None:
    train, test = _digits()
    protocol = Protocol(knn_k=(20,), linear=False)
    setup = BaselineSetup()
    measure_baselines(train, test, setup, protocol, ["raw_pixels"])
    flipped = ImageDataset(train.name, train.images.flip(-1), train.labels, train.classes)
    assert not measure_baselines(flipped, test, setup, protocol, ["raw_pixels"])["raw_pixels"][
        "cached"]


def test_unknown_baseline_is_refused() -> None:
    train, test = _digits()
    with pytest.raises(ConfigError, match="raw_pixels"):
        measure_baselines(train, test, BaselineSetup(), names=["pixels"])


def test_knn_accuracies_in_one_pass_equal_one_k_at_a_time() -> None:
    generator = torch.Generator().manual_seed(5)
    x, x_test = torch.randn(300, 8, generator=generator), torch.randn(90, 8, generator=generator)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
    y_test = (x_test[:, 0] > 0).long() + (x_test[:, 1] > 0.5).long()
    together = knn_accuracies(x, y, x_test, y_test, (200, 20, 1), t=0.1, batch_size=32)
    one_by_one = {k: knn_accuracy(x, y, x_test, y_test, k=k, t=0.1) for k in (200, 20, 1)}
    assert together == pytest.approx(one_by_one, abs=1e-6)
    assert 0.6 < together[20] < 1.0  # informative features, imperfect labels: not a constant


def test_each_baseline_entry_keys_what_decides_its_figures() -> None:
    """The registry's keys are the ones the earlier if-chain wrote: the caches stay valid."""
    train, test = _digits()
    setup = BaselineSetup(backbone="small_convnet", supervised_steps=7,
                          supervised_batch_size=5, supervised_lr=0.3)
    keys = {name: baselines_module._key(name, train, test, setup, Protocol())
            for name in baselines_module.BASELINES}
    common = {"train", "test", "protocol", "probe", "seed", "baseline"}
    assert set(keys["raw_pixels"]) == common
    assert set(keys["random_init"]) == common | {"backbone"}
    assert keys["supervised"]["budget"] == [7, 5, 0.3, [0.5, 1.0]]
    assert keys["supervised"]["backbone"] == keys["random_init"]["backbone"] == "small_convnet"
    assert [baselines_module.BASELINES[n].label for n in keys] == \
        ["raw pixels", "random init", "supervised"]
    with pytest.raises(ConfigError, match="unknown baseline 'raw'"):
        measure_baselines(train, test, setup, names=["raw"])
