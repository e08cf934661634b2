"""The report's 2-D embedding map: written from a run's embedding.npz, the right number of
points, and a collapsed embedding's map visibly degenerate (measured on the coordinates)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from _cli import TINY, run_cli
from nocollapse.report.embedding import (
    COINCIDE,
    class_separation,
    embedding_maps,
    map_2d,
    read_embedding,
)
from nocollapse.rundir.embedding import principal_scores
from nocollapse.runio import EMBEDDING_FILE


def _clustered(n: int, classes: int, dim: int, noise: float, seed: int
               ) -> tuple[torch.Tensor, np.ndarray]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=generator)
    centres = torch.randn(classes, dim, generator=generator)
    return centres[labels] + noise * torch.randn(n, dim, generator=generator), labels.numpy()


def test_healthy_features_map_to_separated_classes() -> None:
    features, labels = _clustered(300, 5, 64, 0.2, seed=0)
    scores, spread = principal_scores(features)
    assert scores.shape == (300, 50) and spread > 0.3
    found = map_2d(scores, labels, spread)
    assert found.method == "t-SNE" and found.xy.shape == (300, 2)
    assert found.separation > 0.6  # each class its own island


def test_a_collapsed_embedding_maps_to_one_point_or_to_mixed_classes() -> None:
    _, labels = _clustered(300, 5, 64, 0.2, seed=1)
    # complete collapse: every image gets the same feature (up to float32 rounding)
    constant = torch.ones(300, 64) + 1e-7 * torch.randn(300, 64)
    scores, spread = principal_scores(constant)
    assert spread < COINCIDE
    found = map_2d(scores, labels, spread)
    assert found.xy.shape == (300, 2) and float(np.ptp(found.xy, axis=0).max()) == 0.0
    assert found.separation == 0.0 and found.method.startswith("none")
    # features that differ only by class-blind noise: t-SNE lays out a blob, classes mixed
    noise = torch.ones(300, 64) + 1e-2 * torch.randn(300, 64, generator=torch.Generator()
                                                      .manual_seed(2))
    scores, spread = principal_scores(noise)
    assert spread > COINCIDE
    assert map_2d(scores, labels, spread).separation < 0.1


def test_class_separation_bounds() -> None:
    labels = np.array([0, 0, 1, 1])
    assert class_separation(np.array([[0.0, 0], [0, 0], [1, 1], [1, 1]]), labels) == 1.0
    assert class_separation(np.zeros((4, 2)), labels) == 0.0
    assert class_separation(np.array([[0.0, 0], [1, 0], [0, 0], [1, 0]]), labels) == 0.0


def test_report_draws_the_run_and_random_init_maps(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    code, err = run_cli(["train", "--out", str(out), *TINY, "epochs=1", "eval.baselines=[]",
                         "eval.embedding_points=100"], capsys)
    assert code == 0, err
    arrays, why = read_embedding(out)
    assert arrays is not None, why
    assert arrays["labels"].shape == (100,) and arrays["trained"].shape[0] == 100
    assert arrays["random_init"].shape[0] == 100
    assert [str(name) for name in arrays["classes"]] == [str(d) for d in range(10)]  # digits
    assert not np.array_equal(arrays["trained"], arrays["random_init"])
    maps = embedding_maps(arrays)
    assert all(found.xy.shape == (100, 2) for found in maps.values())
    assert run_cli(["report", str(out), "--out", str(tmp_path / "report")], capsys)[0] == 0
    figure = tmp_path / "report" / "run-embedding.png"
    assert figure.is_file() and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "run-embedding.png" in (tmp_path / "report" / "report.md").read_text()


def test_a_run_without_the_sample_is_skipped_with_the_reason(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert run_cli(["train", "--out", str(out), *TINY, "epochs=1", "eval.baselines=[]",
                    "eval.embedding_points=0"], capsys)[0] == 0
    assert not (out / EMBEDDING_FILE).exists()
    assert run_cli(["report", str(out), "--out", str(tmp_path / "report")], capsys)[0] == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "final features in 2-D: skipped (no embedding.npz" in text
    (out / EMBEDDING_FILE).write_bytes(b"not an npz")
    assert read_embedding(out)[1].startswith(f"{EMBEDDING_FILE} is damaged")
