"""Every fenced code block of README.md and docs/*.md runs as written.

Each block is one test, run in a shared scratch folder (its ``runs/...`` paths land
there) in the order of its page:

- ``python`` blocks run in one namespace per page (a page's later blocks may use its
  earlier ones' names, as a reader does), with one torch thread;
- ``bash`` blocks run each ``nocollapse ...`` command in this process
  (``nocollapse.cli.main.main``), expecting exit status 0, with the training runs made
  tiny by ``NOCOLLAPSE_OVERRIDES`` (README: "Making runs tiny") instead of editing the
  command; a command that is not ``nocollapse`` needs the block to be marked skipped;
- ``text`` and ``toml`` blocks are output or file excerpts, not code;
- a block preceded by ``<!-- doc-test: skip: REASON -->`` is reported skipped with
  that reason (``pytest -rs`` lists them).

A page's blocks that read a run made elsewhere (``runs/default`` of ``nocollapse
train``, ``runs/byol``) get it from ``RUNS_FIRST``, trained once, tiny.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from nocollapse.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"<!--\s*doc-test:\s*skip:\s*(.+?)\s*-->")
NOT_CODE = {"text", "toml", "yaml", "console"}
# what a tiny run is: a few steps on the bundled digits, the k-NN evaluation only
TINY = ("max_steps=4 data.name=digits data.batch_size=32 data.test_subset=128 "
        "eval.baselines=[] eval.linear_probe=false eval.embedding_points=64 device.threads=1")
# runs a page reads that it does not make itself (made once, tiny, before the page)
RUNS_FIRST = {"export.md": ["runs/default", "runs/byol"], "README.md": ["runs/default"],
              "run-directory.md": ["runs/default"]}
RUN_COMMANDS = {"runs/default": "train --out runs/default",
                "runs/byol": "train --method byol --out runs/byol"}


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    language: str
    code: str
    skip: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks(path: Path) -> Iterator[Block]:
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(```+)\s*([\w-]*)", lines[i])
        if not fence:
            i += 1
            continue
        start, ticks, language = i, fence.group(1), fence.group(2).lower()
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith(ticks))
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marked = SKIP.search(before)
        yield Block(path.name, start + 1, language, "\n".join(lines[start + 1:end]) + "\n",
                    marked.group(1) if marked else None)
        i = end + 1


ALL = [block for page in PAGES for block in blocks(page)]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    from nocollapse.data import DATASETS
    from nocollapse.data.presets import PRESETS as AUGMENT_PRESETS
    from nocollapse.losses import LOSSES
    from nocollapse.methods.config import PRESETS
    from nocollapse.predictors import PREDICTORS

    # docs/extending.md registers a predictor, a loss, a data set and a preset: the
    # registries are put back afterwards, for the tests that follow
    registries: list[dict] = [PREDICTORS, LOSSES, DATASETS, PRESETS, AUGMENT_PRESETS]
    kept = [dict.copy(registry) for registry in registries]
    folder = tmp_path_factory.mktemp("docs")
    old, threads = Path.cwd(), torch.get_num_threads()
    environment = {"NOCOLLAPSE_OVERRIDES": TINY, "NOCOLLAPSE_CACHE": str(folder / "cache")}
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    os.chdir(folder)
    torch.set_num_threads(1)
    try:
        yield {"namespaces": {}, "made": set()}
    finally:
        os.chdir(old)
        torch.set_num_threads(threads)
        for registry, entries in zip(registries, kept, strict=True):
            dict.clear(registry)
            dict.update(registry, entries)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _nocollapse(command: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = main(shlex.split(command))
    assert status == 0, f"nocollapse {command} exited {status}:\n{out.getvalue()[-3000:]}"


def _commands(code: str) -> list[str]:
    """The block's commands: continuation lines joined, comments and blank lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    commands = []
    for line in joined.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if line:
            commands.append(line)
    return commands


@pytest.mark.parametrize("block", ALL, ids=[b.id for b in ALL])
def test_doc_block_runs_as_written(block: Block, workspace: dict) -> None:
    if block.skip:
        pytest.skip(f"{block.id}: {block.skip}")
    if block.language in NOT_CODE or not block.language:
        pytest.skip(f"{block.id}: a {block.language or 'plain'} block (output or a file), "
                    "not code")
    made: set[str] = workspace["made"]
    for run in RUNS_FIRST.get(block.page, []):
        if run not in made:
            _nocollapse(RUN_COMMANDS[run])
            made.add(run)
    if block.language == "python":
        namespace = workspace["namespaces"].setdefault(block.page, {"__name__": "__docs__"})
        exec(compile(block.code, block.id, "exec"), namespace)
    elif block.language == "bash":
        for command in _commands(block.code):
            program, _, rest = command.partition(" ")
            assert program == "nocollapse", (
                f"{block.id}: {command!r} is not a nocollapse command; mark the block "
                "<!-- doc-test: skip: REASON -->")
            _nocollapse(rest)
    else:
        pytest.fail(f"{block.id}: a {block.language} block; say how it is checked here")


def test_the_runner_sees_the_pages_blocks() -> None:
    """The parser finds fences (a regression would skip every block silently)."""
    run = [b for b in ALL if not b.skip and b.language not in NOT_CODE and b.language]
    assert len(ALL) >= 20 and len(run) >= 15
    print(f"doc blocks: {len(ALL)}, run {len(run)}, skipped or not code {len(ALL) - len(run)}")
