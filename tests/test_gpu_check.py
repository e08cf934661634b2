"""benchmarks/gpu_check.py's CPU fallback (the GPU run itself needs a lent GPU)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from nocollapse.methods import method_names

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture()
def gpu_check():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(SCRIPT.parent))


def test_cpu_tiny_fallback_measures_every_preset_and_width(gpu_check, tmp_path: Path) -> None:
    out = tmp_path / "check.json"
    results = gpu_check.main(["--device", "cpu", "--tiny", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(results))
    steps = results["steps"]
    assert {r["method"] for r in steps} == set(method_names())
    assert {r["precision"] for r in steps} == {"fp32", "bf16-mixed"}
    assert all(r["images_per_s"] > 0 and r["syncs_per_step"] is None for r in steps)
    assert [r["width"] for r in results["directpred"]] == [16, 32]
    assert all(r["linear_images_per_s"] > 0 for r in results["directpred"])


def test_an_exhausted_time_budget_skips_and_says_so(gpu_check) -> None:
    results = gpu_check.main(["--device", "cpu", "--tiny", "--budget-s", "0"])
    assert all(r.get("skipped") == "time budget" for r in results["steps"])
    assert all(r.get("skipped") == "time budget" for r in results["directpred"])
