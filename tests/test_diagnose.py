"""``nocollapse diagnose``: branches from the snapshot, verdicts by the warning's thresholds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _cli import overrides
from nocollapse.cli.main import main
from nocollapse.diagnose import INTERVENTIONS, DiagnoseRequest, RunFacts, plan
from nocollapse.diagnose.interventions import register_intervention, select
from nocollapse.diagnose.verdict import judge
from nocollapse.errors import ConfigError
from nocollapse.monitor import MonitorConfig
from nocollapse.report import build_report
from nocollapse.train import load_config, train

BASE = ["data.name=digits", "data.batch_size=64", "data.subset=256", "data.test_subset=128",
        "log_every=2", "eval.knn_k=20", "device.accelerator=cpu", "optim.lr=0.05", "seed=3",
        "device.threads=1", "learner.proj_hidden_dim=32", "learner.proj_dim=16",
        "learner.pred_hidden_dim=16", "monitor.every=2", "monitor.spectra=false",
        "monitor.tensorboard=false", "eval.embedding_points=0", "eval.linear_probe=false",
        # every log from step 6 is suspect (collapse level > 0): the snapshot is step 4's
        "epochs=3", "monitor.collapse_threshold=0.0", "monitor.grace_steps=6"]


def _run(tmp_path: Path, *extra: str) -> Path:
    return train(load_config(None, overrides([*BASE, f"out={tmp_path / 'run'}"], *extra)),
                 quiet=True).run_dir


def _logs(ranks: list[float], level: float = 0.1, sigma2: float = 0.3) -> list[dict]:
    return [{"step": 10 * (i + 1), "effective_rank": r, "collapse_level": level,
             "sigma2_est": sigma2} for i, r in enumerate(ranks)]


def test_a_branch_collapses_when_the_runs_warning_fires_on_its_logs() -> None:
    monitor = MonitorConfig()  # rank_drop 0.25, patience 3
    # the run's highest before the snapshot was 40: below 10 is suspect
    falling = judge(_logs([30, 9, 8, 7, 6]), monitor, peak_before=40.0, reference_rank=None)
    assert falling.collapsed and falling.warning_step == 40
    healthy = judge(_logs([30, 28, 25, 24, 26]), monitor, 40.0, None)
    assert not healthy.collapsed and healthy.margin == pytest.approx(25 / 10)
    # the random-init reference: a run whose own peak was already low
    low = judge(_logs([10, 10, 10, 10]), monitor, peak_before=10.0, reference_rank=100.0)
    assert low.collapsed  # 10 < reference_drop 0.125 x 100
    # the last logs suspect, before patience was reached: still collapsed
    last = judge(_logs([30, 30, 30, 5, 5]), monitor, 40.0, None)
    assert last.collapsed and last.warning_step is None
    # no augmentation signal
    assert judge(_logs([30] * 4, sigma2=0.001), monitor, 40.0, None).collapsed
    assert judge([], monitor, 40.0, None).collapsed  # no logs: nothing says it averted


def _facts(**changes: object) -> RunFacts:
    values: dict = dict(method="byol", predictor="mlp", stop_gradient=True, target="ema",
                        base_tau=0.99, lr=0.06, weight_decay=5e-4, batch_size=128, augment={},
                        augment_ops=("jitter", "crop"), sigma2=0.3)
    values.update(changes)
    return RunFacts(**values)


def test_interventions_apply_where_their_cause_can_be_at_work() -> None:
    names = {i.name for i in select(_facts())}
    assert "stop-gradient restored" not in names and "predictor restored" not in names
    assert "augmentation restored" not in names and "control" in names
    names = {i.name for i in select(_facts(stop_gradient=False, predictor="none", sigma2=0.0,
                                           augment_ops=(), weight_decay=0.0, target="stopgrad",
                                           base_tau=None))}
    assert {"stop-gradient restored", "predictor restored", "augmentation restored"} <= names
    assert not {"weight decay x0.1", "slower EMA", "strongest augmentation op removed",
                "predictor lr x0.1"} & names
    assert [i.name for i in select(_facts(), ["batch x4"])] == ["control", "batch x4"]
    with pytest.raises(ConfigError, match="no such intervention"):
        select(_facts(), ["nonsense"])
    with pytest.raises(ConfigError, match="already registered"):
        register_intervention("control", cause="-", rationale="-")(lambda values, facts: None)


def test_diagnose_trains_each_branch_from_the_snapshot_and_writes_the_diagnosis(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(tmp_path, "optim.weight_decay=0.01")
    snapshot, branches = plan(DiagnoseRequest(run, steps=4))
    assert snapshot.step == 4
    names = [name for name, *_ in branches]
    assert names[0] == "control" and "weight decay x0.1" in names
    values = dict((name, v) for name, _, _, v in branches)
    assert values["weight decay x0.1"]["optim"]["weight_decay"] == pytest.approx(0.001)
    assert values["control"]["init_from"].endswith("presuspect.pt")
    assert values["control"]["optim"]["cosine"] is False and values["control"]["max_steps"] == 4
    # one branch beside the control: each is a process of its own (the sweep's launcher)
    assert main(["diagnose", str(run), "--steps", "4", "--only", "batch x4"]) == 0
    out = capsys.readouterr().out
    assert "control" in out and "batch" in out
    result = json.loads((run / "diagnosis" / "diagnosis.json").read_text())
    # collapse level > 0 is suspect: the control collapses again, and so does the branch
    assert result["control_reproduced"] is True and result["ranking"] == []
    assert [b["status"] for b in result["branches"]] == ["collapses"] * 2
    for folder, batch in (("control", 64), ("batch-x4", 256)):
        branch = run / "diagnosis" / folder
        assert json.loads((branch / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 4
        assert load_config(branch / "config.yaml").data.batch_size == batch
    assert "no branch averted it" in (run / "diagnosis" / "diagnosis.md").read_text()
    # nocollapse report draws the branches beside the control, with the diagnosis
    report = build_report([run], tmp_path / "report")
    assert (tmp_path / "report" / "run-diagnosis.png").stat().st_size > 0
    assert "## run: diagnosis" in report.markdown.read_text()
    # other settings over the same folder are refused by name, before anything runs
    assert main(["diagnose", str(run), "--steps", "6"]) == 2
    assert "another diagnosis" in capsys.readouterr().err


def test_diagnose_refuses_a_run_without_a_snapshot_and_bad_options(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run(tmp_path, "presuspect_snapshot=false")
    assert main(["diagnose", str(run)]) == 2
    assert "no pre-collapse snapshot" in capsys.readouterr().err
    assert main(["diagnose", str(run), "--from-step", "3"]) == 2
    assert main(["diagnose", str(tmp_path / "absent")]) == 2
    assert not (run / "diagnosis").exists()
    # --from-step 0: from the random-init weights
    snapshot, branches = plan(DiagnoseRequest(run, from_step=0, steps=2))
    assert snapshot.path is None and branches[0][3]["init_from"] is None
    assert "control" in INTERVENTIONS


def test_learned_needs_a_label_free_figure_above_the_random_init_encoders() -> None:
    from nocollapse.sweep.outcome import classify, refine_outcome

    healthy = classify(False, 0.1, 40.0, 60.0)
    assert healthy == "not collapsed"
    assert refine_outcome({"outcome": healthy, "rankme": 170.0, "init_rankme": 157.0}) == \
        "learned"
    assert refine_outcome({"outcome": healthy, "rankme": 126.0, "init_rankme": 157.0}) == \
        "not collapsed"
    assert refine_outcome({"outcome": healthy, "rankme": None, "init_rankme": 157.0}) == \
        "not collapsed"
    assert refine_outcome({"outcome": "dimensional collapse", "rankme": 900.0,
                           "init_rankme": 157.0}) == "dimensional collapse"


def test_train_diagnose_says_when_there_is_nothing_to_diagnose(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from _cli import TINY

    healthy = ["monitor.collapse_threshold=1.0", "monitor.min_effective_rank=0",
               "monitor.rank_drop=0", "monitor.reference_drop=0", "monitor.sigma2_floor=0",
               "eval.linear_probe=false", "eval.embedding_points=0"]
    assert main(["train", *TINY, "--epochs", "1", "--out", str(tmp_path / "ok"), "--diagnose",
                 *healthy]) == 0
    assert "nothing to diagnose" in capsys.readouterr().out
    assert not (tmp_path / "ok" / "diagnosis").exists()
