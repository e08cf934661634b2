"""``report`` on hand-damaged run directories: a named error or a report, never a traceback
(issue 18, section 5). The listed cases first, then a hypothesis property over random damage.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _cli import TINY, run_cli

FILES = ("summary.json", "metrics.jsonl", "spectra.jsonl", "warnings.jsonl", "config.yaml")
HOSTILE = [None, "inf", "-inf", "nan", "x", [], [1, 2], {}, {"a": 1}, 0, -1, 1e308, -1e308,
           True, 10**30, "1e999", [[[]]]]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nocollapse.cli.main import main

    out = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *TINY, "--epochs", "2", "--out", str(out)]) == 0
    return out


def _report(run: Path, capsys: pytest.CaptureFixture) -> None:
    code, err = run_cli(["report", str(run), "--out", str(run.parent / "report")], capsys)
    assert code in (0, 2), err
    assert "Traceback" not in err
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and "error" in err, err


def _set(path: Path, key: str, value: Any, line: int | None = None) -> None:
    """Set ``key`` to ``value`` in the JSON file ``path`` (each line of a .jsonl, or one)."""
    try:
        records = [json.loads(text) for text in path.read_text().splitlines()]
    except ValueError:  # already damaged beyond JSON by an earlier step
        return
    for i, record in enumerate(records):
        if isinstance(record, dict) and (line is None or i == line % len(records)):
            record[key] = value
    text = "".join(json.dumps(r) + "\n" for r in records)
    path.write_text(text.strip() if path.suffix == ".json" else text)


@pytest.mark.parametrize(("name", "key", "value"), [
    ("metrics.jsonl", "train_seconds", None), ("metrics.jsonl", "train_seconds", "soon"),
    ("summary.json", "evaluation", [1, 2]), ("summary.json", "seconds", "many"),
    ("spectra.jsonl", "epoch", [1]), ("spectra.jsonl", "tau_est", 0),
    ("metrics.jsonl", "epoch", "inf"), ("metrics.jsonl", "loss", 1e308),
    ("metrics.jsonl", "loss", -1e308), ("summary.json", "evaluation", {"headline": [1]}),
])
def test_report_on_the_listed_damage(name: str, key: str, value: Any, finished: Path,
                                     tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = Path(shutil.copytree(finished, tmp_path / "run"))
    if (run / name).exists():
        _set(run / name, key, value)
    _report(run, capsys)


def test_report_on_a_config_nested_20000_deep(finished: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    run = Path(shutil.copytree(finished, tmp_path / "run"))
    (run / "config.yaml").write_text("a: " + "[" * 20_000 + "]" * 20_000 + "\n")
    _report(run, capsys)


damage = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(FILES[:4]),
              st.sampled_from(["step", "epoch", "loss", "knn_accuracy", "train_seconds",
                               "evaluation", "headline", "seconds", "tau_est", "sigma2_est",
                               "F_eigenvalues", "Wp_eigenvalues", "alignment", "stopped",
                               "planned_steps", "final", "effective_rank", "message"]),
              st.sampled_from(HOSTILE), st.integers(0, 50)),
    st.tuples(st.just("cut"), st.sampled_from(FILES), st.floats(0, 1), st.none(), st.none()),
    st.tuples(st.just("bytes"), st.sampled_from(FILES), st.binary(max_size=40),
              st.integers(0, 10**6), st.none()),
)


@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(damages=st.lists(damage, min_size=1, max_size=3))
def test_report_never_shows_a_traceback_on_random_damage(
        damages: list[tuple], finished: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    shutil.rmtree(run, ignore_errors=True)
    shutil.rmtree(tmp_path / "report", ignore_errors=True)
    shutil.copytree(finished, run)
    for kind, name, a, b, c in damages:
        path = run / name
        if not path.exists():
            continue
        if kind == "set":
            _set(path, a, b, c)
        elif kind == "cut":
            data = path.read_bytes()
            path.write_bytes(data[:int(len(data) * a)])
        else:
            data = path.read_bytes()
            at = b % (len(data) + 1)
            path.write_bytes(data[:at] + a + data[at:])
    _report(run, capsys)
