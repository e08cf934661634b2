"""docs/theory.md is the one home of the mathematics: citations resolve, the table is real."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
THEORY = ROOT / "docs" / "theory.md"
SOURCES = [*sorted((ROOT / "src" / "nocollapse").rglob("*.py")),
           *sorted((ROOT / "tests").glob("*.py")), ROOT / "README.md",
           *sorted((ROOT / "docs").glob("*.md"))]


def _anchors() -> set[str]:
    return set(re.findall(r'<a id="([a-z0-9-]+)"></a>', THEORY.read_text()))


def test_every_cited_anchor_exists_and_nothing_cites_outside_the_repository() -> None:
    anchors = _anchors()
    missing, outside = [], []
    for path in SOURCES:
        text = path.read_text()
        missing += [f"{path.name}: #{a}" for a in re.findall(r"docs/theory\.md#([a-z0-9-]+)", text)
                    if a not in anchors]
        if path != Path(__file__) and re.search(r"papers\.md|\.\./shared|/work/shared", text):
            outside.append(path.name)
    assert not missing, f"citations of absent sections: {missing}"
    assert not outside, f"files citing material outside the repository: {outside}"


def test_formula_table_names_existing_tests() -> None:
    text = THEORY.read_text().split('<a id="formula-table"></a>')[1]
    absent = []
    for row in text.splitlines():
        current = None
        for file, name in re.findall(r"`(tests/[\w/]+\.py)?::(\w+)`", row):
            current = file or current
            if current and f"def {name}(" not in (ROOT / current).read_text():
                absent.append(f"{current}::{name}")
    assert len(re.findall(r"::test_", text)) >= 30
    assert not absent, f"formula table names tests that do not exist: {absent}"
