"""The reproduction runner: claims decide the exit code, results land on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nocollapse.cli.main import main
from nocollapse.errors import ConfigError
from nocollapse.experiments import registry
from nocollapse.experiments.result import ReproductionResult, Table


@pytest.fixture
def fake_reproductions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_REGISTRY", {})
    monkeypatch.setattr(registry, "MODULES", ())

    @registry.reproduction("fake-pass", "test", "a claim that holds")
    def _pass(out: Path, size: str, seed: int) -> ReproductionResult:
        (out / "fig.png").write_bytes(b"png")
        result = ReproductionResult("fake-pass", figures=["fig.png"])
        result.check("two plus two", "4", str(2 + 2), 2 + 2 == 4)
        result.tables.append(Table("numbers", ["a", "b"], [["1", "2"]]))
        return result

    @registry.reproduction("fake-fail", "test", "a claim that does not")
    def _fail(out: Path, size: str, seed: int) -> ReproductionResult:
        result = ReproductionResult("fake-fail")
        result.check("holds", "yes", "yes", True)
        result.check("breaks", "1", "0", False)
        return result


def test_verdicts_follow_the_claims() -> None:
    result = ReproductionResult("x")
    assert result.verdict() == "not"  # no claim checked is not a success
    result.check("a", "1", "1", True)
    assert result.verdict() == "reproduced" and result.passed
    result.check("b", "1", "2", False)
    assert result.verdict() == "partly" and not result.passed


def test_passing_reproduction_writes_markdown_and_json(fake_reproductions, tmp_path) -> None:
    doc = tmp_path / "docs" / "reproductions.md"
    code = main(["reproduce", "fake-pass", "--size", "quick", "--out", str(tmp_path / "r"),
                 "--doc", str(doc)])
    assert code == 0
    saved = json.loads((tmp_path / "r" / "fake-pass" / "result.json").read_text())
    assert saved["verdict"] == "reproduced" and saved["params"]["size"] == "quick"
    markdown = doc.read_text()
    assert "| two plus two | 4 | 4 | yes |" in markdown
    assert "../r/fake-pass/fig.png" in markdown  # figure link relative to the doc


def test_failed_claim_gives_exit_code_1(fake_reproductions, tmp_path) -> None:
    assert main(["reproduce", "all", "--size", "quick", "--out", str(tmp_path)]) == 1
    assert "**no**" in (tmp_path / "fake-fail" / "result.md").read_text()


def test_unknown_name_and_size_are_refused_before_running(fake_reproductions, tmp_path) -> None:
    assert main(["reproduce", "fake-pas", "--out", str(tmp_path)]) == 2
    assert main(["reproduce", "fake-pass", "--size", "huge", "--out", str(tmp_path)]) == 2
    assert not any(tmp_path.iterdir())
    with pytest.raises(ConfigError, match="did you mean 'fake-pass'"):
        registry.get_reproduction("fake-pas")


def test_list_shows_every_registered_name(fake_reproductions, capsys) -> None:
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    assert "fake-pass" in out and "fake-fail" in out
