"""The package's layers import only downward (DESIGN.md), and theory needs no torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "nocollapse"

# layer -> layers it may import (besides itself and the shared utilities).
ALLOWED: dict[str, set[str]] = {
    "diagnostics": set(),
    "theory": {"diagnostics"},
    # framework-free collapse monitor: tensors in, run-directory files out (DESIGN.md)
    "monitor": {"diagnostics"},
    # the Lightning callback: the monitor inside a Lightning Trainer (optional extra)
    "lightning": {"monitor", "diagnostics"},
    "models": set(),
    "data": {"models"},
    "losses": {"diagnostics", "models"},
    "predictors": {"losses", "diagnostics", "models"},
    "methods": {"predictors", "losses", "diagnostics", "data", "models"},
    "evaluate": {"methods", "predictors", "losses", "diagnostics", "data", "models"},
    # a run directory's life (lock, checkpoints, resume rules, summary): beside runio, below
    # the loop that calls it; it knows the training config only as a plain dict
    "rundir": {"evaluate", "methods", "predictors", "losses", "diagnostics", "data", "models"},
    "train": {"rundir", "evaluate", "methods", "predictors", "losses", "diagnostics", "data",
              "models", "monitor"},
}
# report reads run directories (training or simulation) and draws them; it runs nothing.
ALLOWED["report"] = {"theory", "diagnostics"}
# sweep runs grids of train runs and reads them back; it draws nothing itself.
ALLOWED["sweep"] = {"train", "theory", "report", *ALLOWED["train"]}
# posthoc: a finished run directory evaluated again or exported; rebuilds it through train
ALLOWED["posthoc"] = {"train", *ALLOWED["train"]}
# diagnose: a collapsed run branched from its snapshot, each branch a sweep-launched run
ALLOWED["diagnose"] = {"sweep", *ALLOWED["sweep"]}
ALLOWED["experiments"] = {"diagnose", "sweep", *ALLOWED["sweep"]}
ALLOWED["cli"] = {"experiments", "posthoc", *ALLOWED["experiments"]}
UTILITIES = {"errors", "runio", "threads", "plugins", "__init__", "__main__"}


def _imported_layers(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "nocollapse" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_layers_import_only_downward() -> None:
    violations = []
    for layer, allowed in ALLOWED.items():
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            bad = _imported_layers(path) - allowed - UTILITIES - {layer}
            if bad:
                violations.append(f"{path.relative_to(PACKAGE)} imports {sorted(bad)}")
    assert not violations, "layer violations:\n" + "\n".join(violations)


def test_theory_and_diagnostics_import_without_torch() -> None:
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import nocollapse.theory, nocollapse.diagnostics, pkgutil, importlib\n"
        "for pkg in (nocollapse.theory, nocollapse.diagnostics):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        importlib.import_module(pkg.__name__ + '.' + m.name)\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
