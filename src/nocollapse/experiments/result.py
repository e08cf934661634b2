"""What a reproduction returns: checked claims, tables of numbers, figures.

A reproduction never hard-codes its outcome: every :class:`Claim` carries the
number it measured next to the number (or inequality) the paper states, and
``passed`` is computed from the two.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def _cell(text: str) -> str:
    """Markdown table cell: a literal ``|`` (as in ``||W||``) must not split the cell."""
    return str(text).replace("|", "\\|")


@dataclass(frozen=True)
class Claim:
    """One published or theoretical statement, checked against a measurement.

    Attributes:
        statement: the claim in words, e.g. ``"full flow converges to p*_+"``.
        expected: what the paper or theory says, as text (``"0.5442"``, ``"< 5%"``).
        measured: what this run measured, as text.
        passed: whether the measurement supports the claim.
    """

    statement: str
    expected: str
    measured: str
    passed: bool


@dataclass(frozen=True)
class Table:
    """A titled table of measured numbers (rows already formatted as text)."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""  # a paragraph printed under the table (how to read a column)

    def to_markdown(self) -> str:
        lines = [f"**{self.title}**", "", "| " + " | ".join(self.header) + " |"]
        lines.append("|" + "---|" * len(self.header))
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in self.rows]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)


@dataclass
class ReproductionResult:
    """Everything one reproduction produced.

    Attributes:
        name: the reproduction's registry name.
        claims: checked claims; the run fails if any has ``passed=False``.
        tables: tables of measured numbers for the markdown report.
        figures: paths of the figures written (relative to the output folder).
        params: the settings actually used (size, seed, grid sizes...).
        seconds: wall time, filled in by the runner.
    """

    name: str
    claims: list[Claim] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(claim.passed for claim in self.claims)

    def check(self, statement: str, expected: str, measured: str, passed: bool) -> Claim:
        """Record a claim and return it (so callers can also assert on it)."""
        claim = Claim(statement, expected, measured, bool(passed))
        self.claims.append(claim)
        return claim

    def verdict(self) -> str:
        """``reproduced`` (all claims), ``partly`` (some), or ``not`` (none)."""
        held = sum(claim.passed for claim in self.claims)
        if self.claims and held == len(self.claims):
            return "reproduced"
        return "partly" if held else "not"

    def to_markdown(self, command: str = "") -> str:
        lines = [f"### `{self.name}` — {self.verdict()}", ""]
        if command:
            lines += [f"Command: `{command}` ({self.seconds:.1f} s)", ""]
        lines += ["| claim | expected | measured | holds |", "|---|---|---|---|"]
        for claim in self.claims:
            mark = "yes" if claim.passed else "**no**"
            cells = (claim.statement, claim.expected, claim.measured)
            lines.append("| " + " | ".join(_cell(c) for c in cells) + f" | {mark} |")
        for table in self.tables:
            lines += ["", table.to_markdown()]
        for figure in self.figures:
            lines += ["", f"![{self.name}]({figure})"]
        return "\n".join(lines) + "\n"

    def to_json(self) -> str:
        return json.dumps(asdict(self) | {"verdict": self.verdict()}, indent=2, default=str)

    def save(self, folder: Path, command: str = "") -> None:
        """Write ``result.md`` and ``result.json`` into ``folder``."""
        from nocollapse.runio import atomic_write_text

        atomic_write_text(folder / "result.md", self.to_markdown(command))
        atomic_write_text(folder / "result.json", self.to_json())
