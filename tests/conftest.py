"""Shared fixtures: cached baselines go to a per-test folder, never the user's cache."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOCOLLAPSE_CACHE", str(tmp_path / "nocollapse-cache"))
