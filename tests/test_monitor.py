"""CollapseMonitor: diagnostics in training, spectra per epoch, early warning, stop-on-collapse."""

from __future__ import annotations

import io
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from nocollapse.diagnostics import critical_eta, summarize
from nocollapse.errors import ConfigError, NocollapseError
from nocollapse.methods import StepOutput
from nocollapse.monitor import (
    SPECTRA_FILE,
    WARNINGS_FILE,
    CollapseDetected,
    CollapseMonitor,
    MonitorConfig,
    fast_scalars,
    likely_causes,
    spectra_record,
)
from nocollapse.monitor.warnings import UNEXPLAINED, run_figures
from nocollapse.report import build_report, load_run
from nocollapse.train.config import TrainConfig, run_context

B, D = 64, 16


class Learner:
    """Stands in for SiameseLearner: fixed F_hat and Wp."""

    def __init__(self, F: torch.Tensor | None = None, Wp: torch.Tensor | None = None):
        self.F, self.Wp = F, Wp

    def correlation(self) -> torch.Tensor | None:
        return self.F

    def predictor_matrix(self) -> torch.Tensor | None:
        return self.Wp


def _output(z1: torch.Tensor, z2: torch.Tensor) -> StepOutput:
    return StepOutput(torch.tensor(0.0), z1, z2, z1, z2)


def _healthy(generator: torch.Generator) -> StepOutput:
    return _output(torch.randn(B, D, generator=generator), torch.randn(B, D, generator=generator))


def _collapsed() -> StepOutput:
    z = torch.ones(B, D) * torch.linspace(1, 2, D)  # every embedding the same vector
    return _output(z, z.clone())


def _rank_one(generator: torch.Generator) -> StepOutput:
    u = torch.randn(D, generator=generator)
    z = torch.randn(B, 1, generator=generator) * u + 1e-6 * torch.randn(B, D, generator=generator)
    return _output(z, z.clone())


def _monitor(tmp_path: Path, **options: object) -> CollapseMonitor:
    # the stand-in views are one tensor twice: no augmentation signal, its test off unless asked
    options = {"sigma2_floor": 0.0, **options}
    config = MonitorConfig(every=1, patience=3, tensorboard=False, **options)  # type: ignore[arg-type]
    console = Console(file=io.StringIO(), width=200)
    return CollapseMonitor(config, tmp_path, {"predictor": "none"}, console)


def _warnings(tmp_path: Path) -> list[dict]:
    path = tmp_path / WARNINGS_FILE
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.numerical
def test_fast_scalars_match_the_diagnostics_summary() -> None:
    generator = torch.Generator().manual_seed(0)
    z1 = torch.randn(B, D, generator=generator) @ torch.diag(torch.linspace(0.1, 2, D))
    z2 = z1 + 0.3 * torch.randn(B, D, generator=generator)
    fast = fast_scalars(z1, z2)
    reference = summarize(z1.numpy(), z2.numpy())
    for key, value in fast.items():
        assert value == pytest.approx(reference[key], rel=1e-4, abs=1e-6), key


@pytest.mark.numerical
def test_rank_one_batch_wider_than_long_has_effective_rank_one() -> None:
    generator = torch.Generator().manual_seed(9)
    u = torch.randn(512, generator=generator)
    z = torch.randn(32, 1, generator=generator) * u  # (32, 512), rank one
    fast = fast_scalars(z)
    assert fast["effective_rank"] == pytest.approx(1.0, abs=1e-3)  # float32 round-off: 1.016
    assert fast["effective_rank"] == pytest.approx(summarize(z.numpy())["effective_rank"], abs=0.02)


def test_all_equal_embeddings_warn_after_patience_logs(tmp_path: Path) -> None:
    monitor = _monitor(tmp_path)
    record: dict = {}
    for step in range(2):
        monitor.on_log(step, _collapsed(), Learner(), record)
    assert record["collapse_level"] == pytest.approx(1.0)
    assert not _warnings(tmp_path), "warned before K consecutive logs"
    for step in range(2, 6):
        monitor.on_log(step, _collapsed(), Learner(), {})
    warnings = _warnings(tmp_path)
    assert len(warnings) == 1, "one warning per episode of collapse"
    assert warnings[0]["step"] == 2 and warnings[0]["consecutive_logs"] == 3
    assert any("no predictor" in cause for cause in warnings[0]["likely_causes"])
    printed = monitor.console.file.getvalue()
    assert "collapse warning" in printed and "step 2" in printed and "no predictor" in printed


def test_dimensional_collapse_warns_through_effective_rank(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(1)
    monitor = _monitor(tmp_path, collapse_threshold=1.0)  # only the rank can fire
    for step in range(3):
        record: dict = {}
        monitor.on_log(step, _rank_one(generator), Learner(), record)
        assert record["effective_rank"] < 1.5
    assert len(_warnings(tmp_path)) == 1
    assert "effective rank" in _warnings(tmp_path)[0]["message"]


def _rank_k(generator: torch.Generator, k: int) -> StepOutput:
    basis = torch.linalg.qr(torch.randn(D, k, generator=generator))[0]  # k orthonormal columns
    z = torch.randn(B, k, generator=generator) @ basis.T
    return _output(z, z.clone())


def test_a_fall_to_a_few_directions_warns_relative_to_the_runs_highest_rank(
        tmp_path: Path) -> None:
    # healthy (rank ~ D), then k = 3 directions: above the absolute floor of 1.5, but
    # below a quarter of the run's highest effective rank: dimensional collapse.
    generator = torch.Generator().manual_seed(4)
    monitor = _monitor(tmp_path, collapse_threshold=1.0)  # only the rank can fire
    ranks = []
    for step in range(6):
        record: dict = {}
        output = _healthy(generator) if step < 2 else _rank_k(generator, 3)
        monitor.on_log(step, output, Learner(), record)
        ranks.append(record["effective_rank"])
    assert ranks[0] > D / 2 and all(1.5 < r < 0.25 * ranks[0] for r in ranks[2:]), ranks
    warnings = _warnings(tmp_path)
    assert len(warnings) == 1 and warnings[0]["step"] == 4, warnings
    assert "dimensional collapse" in warnings[0]["message"]


def test_suspect_logs_in_the_grace_period_do_not_count_but_set_the_peak_rank(
        tmp_path: Path) -> None:
    # steps 0-1 healthy (the run's highest rank), 2-4 collapsed (a transient inside the
    # grace period of 5 steps), 5-6 healthy, then 7-9 a few directions: the transient never
    # warns, the later fall does, measured against the rank of the grace period's logs.
    generator = torch.Generator().manual_seed(6)
    monitor = _monitor(tmp_path, grace_steps=5)
    plan = ["healthy"] * 2 + ["collapsed"] * 3 + ["healthy"] * 2 + ["few"] * 3
    for step, kind in enumerate(plan):
        output = (_healthy(generator) if kind == "healthy" else _collapsed()
                  if kind == "collapsed" else _rank_k(generator, 3))
        monitor.on_log(step, output, Learner(), {})
    warnings = _warnings(tmp_path)
    assert [w["step"] for w in warnings] == [9], warnings
    assert "dimensional collapse" in warnings[0]["message"]
    without = tmp_path / "no-grace"
    monitor = _monitor(without)
    for step, kind in enumerate(plan[:5]):
        monitor.on_log(step, _healthy(generator) if kind == "healthy" else _collapsed(),
                       Learner(), {})
    assert [w["step"] for w in _warnings(without)] == [4]
    with pytest.raises(ConfigError, match="grace_steps"):
        MonitorConfig(grace_steps=-1).validate()


def test_rank_drop_zero_and_a_moderate_fall_do_not_warn(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(5)
    for rank_drop, k in ((0.0, 3), (0.25, D // 2)):  # off; a fall to about half
        folder = tmp_path / f"{rank_drop}-{k}"
        monitor = _monitor(folder, collapse_threshold=1.0, rank_drop=rank_drop)
        for step in range(6):
            monitor.on_log(step, _healthy(generator) if step < 2 else _rank_k(generator, k),
                           Learner(), {})
        assert not _warnings(folder), (rank_drop, k)


def test_isotropic_gaussian_embeddings_do_not_warn(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(2)
    monitor = _monitor(tmp_path)
    for step in range(10):
        record: dict = {}
        monitor.on_log(step, _healthy(generator), Learner(), record)
        assert record["collapse_level"] < 0.3 and record["effective_rank"] > D / 2
    assert not _warnings(tmp_path) and not monitor.warnings


def test_a_healthy_log_rearms_the_warning(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(3)
    monitor = _monitor(tmp_path)
    sequence = [_collapsed()] * 2 + [_healthy(generator)] + [_collapsed()] * 2
    for step, output in enumerate(sequence):
        monitor.on_log(step, output, Learner(), {})
    assert not _warnings(tmp_path), "the streak must restart after a healthy log"


def test_stop_on_collapse_raises_a_nocollapse_error(tmp_path: Path) -> None:
    monitor = _monitor(tmp_path, stop_on_collapse=True)
    monitor.on_log(0, _collapsed(), Learner(), {})
    monitor.on_log(1, _collapsed(), Learner(), {})
    with pytest.raises(CollapseDetected, match="step 2") as caught:
        monitor.on_log(2, _collapsed(), Learner(), {})
    assert isinstance(caught.value, NocollapseError)
    assert len(_warnings(tmp_path)) == 1  # recorded before stopping


def test_scalars_are_logged_every_n_steps_only(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(4)
    monitor = CollapseMonitor(MonitorConfig(every=5, tensorboard=False), tmp_path)
    logged = []
    for step in range(0, 20, 2):  # the loop logs every 2 steps
        record: dict = {}
        monitor.on_log(step, _healthy(generator), Learner(), record)
        if "collapse_level" in record:
            logged.append(step)
    assert logged == [0, 6, 12, 18]


def test_epoch_spectra_hold_known_eigenvalues_and_alignment(tmp_path: Path) -> None:
    rotation, _ = torch.linalg.qr(torch.randn(D, D, dtype=torch.float64))
    f_values = torch.linspace(2.0, 0.1, D, dtype=torch.float64)
    p_values = torch.linspace(1.0, 0.05, D, dtype=torch.float64)
    F = rotation @ torch.diag(f_values) @ rotation.T
    Wp = rotation @ torch.diag(p_values) @ rotation.T  # commutes with F
    monitor = CollapseMonitor(MonitorConfig(every=1, tensorboard=False))
    generator = torch.Generator().manual_seed(5)
    for epoch in range(2):
        monitor.on_log(epoch, _healthy(generator), Learner(F, Wp), {})
        monitor.on_epoch_end(epoch, Learner(F, Wp), tmp_path)
    lines = (tmp_path / SPECTRA_FILE).read_text().splitlines()
    assert len(lines) == 2
    record = json.loads(lines[-1])
    np.testing.assert_allclose(record["F_eigenvalues"], f_values.numpy(), atol=1e-10)
    np.testing.assert_allclose(record["Wp_eigenvalues"], p_values.numpy(), atol=1e-10)
    np.testing.assert_allclose(np.diag(record["alignment"]), 1.0, atol=1e-6)
    assert record["commutator"] < 1e-10
    assert len(record["Z_eigenvalues"]) == D and record["summary"]["eigen_alignment"] > 0.99
    # report reads what the monitor wrote
    run = load_run(tmp_path)
    assert [r["epoch"] for r in run.spectra] == [0, 1]
    names = {p.name for p in build_report([tmp_path]).files}
    assert f"{tmp_path.name}-alignment.png" in names


def test_learner_without_matrices_still_gets_batch_spectra(tmp_path: Path) -> None:
    monitor = CollapseMonitor(MonitorConfig(tensorboard=False))
    monitor.on_log(0, _healthy(torch.Generator().manual_seed(6)), Learner(), {})
    monitor.on_epoch_end(0, Learner(), tmp_path)
    record = json.loads((tmp_path / SPECTRA_FILE).read_text())
    assert "F_eigenvalues" not in record and "alignment" not in record
    assert len(record["Z_eigenvalues"]) == D


def test_tensorboard_absent_is_silent_and_present_receives_scalars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # not installed
    quiet = CollapseMonitor(MonitorConfig(every=1), tmp_path / "a")
    quiet.on_log(0, _healthy(torch.Generator().manual_seed(7)), Learner(), {"loss": 1.0})
    assert quiet._tensorboard is None

    scalars: list[tuple[str, float, int]] = []

    class FakeWriter:
        def __init__(self, log_dir: str, flush_secs: int) -> None:
            self.log_dir = log_dir

        def add_scalar(self, key: str, value: float, step: int) -> None:
            scalars.append((key, value, step))

        def close(self) -> None:
            scalars.append(("closed", 0.0, 0))

    fake = types.ModuleType("torch.utils.tensorboard")
    fake.SummaryWriter = FakeWriter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", fake)
    monitor = CollapseMonitor(MonitorConfig(every=1), tmp_path / "b")
    monitor.on_log(3, _healthy(torch.Generator().manual_seed(8)), Learner(), {"loss": 0.5})
    monitor.close()
    keys = {key for key, _, step in scalars if step == 3}
    assert {"loss", "collapse_level", "effective_rank"} <= keys
    assert scalars[-1][0] == "closed"


def test_eta_over_eta_c_is_a_figure_never_a_cause() -> None:
    eta_c = critical_eta(sigma2=0.5, tau=1.0)
    assert eta_c == pytest.approx(1.0 / 6.0)
    for eta in (0.2, 0.1):  # above and below eta_c: neither names the weight decay
        causes = likely_causes({"weight_decay": eta, "sigma2": 0.5, "lr": 1e-3})
        assert not any("weight decay too high" in c for c in causes), causes
    figures = run_figures({"weight_decay": 0.2, "sigma2": 0.5})
    assert len(figures) == 1 and "eta/eta_c = 1.2 " in figures[0] and "not a collapse" in figures[0]
    assert any("stop-gradient" in c for c in likely_causes({"stop_gradient": False}))
    assert likely_causes({}) == [UNEXPLAINED], "nothing known: no cause is named"


def test_weight_decay_is_named_from_the_decay_per_step() -> None:
    # lr x weight decay: 0.06 x 0.5 = 0.03 of every weight a step is named; the recipe's
    # 0.12 x 2.5e-4 = 3e-5 is not, whatever eta/eta_c reads
    strong = likely_causes({"weight_decay": 0.5, "lr": 0.06, "sigma2": 0.3, "tau": 0.0})
    assert len(strong) == 1 and "weight decay too high" in strong[0] and "0.03" in strong[0]
    weak = likely_causes({"weight_decay": 2.5e-4, "lr": 0.12, "sigma2": 1e3})
    assert weak == [UNEXPLAINED]


@pytest.mark.parametrize(("context", "named"), [
    ({"sigma2": 0.0005}, "too little augmentation"),
    ({"lr": 1.2, "reference_lr": 0.12}, "learning rate too high"),
    ({"lr": 1.2, "first_rank": 3.0, "reference_rank": 40.0, "first_step": 10},
     "learning rate too high"),
    ({"batch_rows": 32, "embedding_dim": 2048, "reference_rank": 20.0}, "batch too small"),
])
def test_each_cause_is_named_from_its_evidence_alone(context: dict, named: str) -> None:
    causes = likely_causes(context)
    assert len(causes) == 1 and causes[0].startswith(named), causes


@pytest.mark.parametrize("context", [
    {"sigma2": 0.3},  # augmentation carries signal
    {"lr": 0.2, "reference_lr": 0.12},  # under LR_FACTOR x the recipe's
    {"lr": 1.2, "first_rank": 30.0, "reference_rank": 40.0},  # the first log was healthy
    {"batch_rows": 256, "embedding_dim": 2048, "reference_rank": 40.0},  # far from its bound
    {"batch_rows": 32, "embedding_dim": 16, "reference_rank": 15.0},  # more rows than dims
])
def test_no_cause_without_its_evidence(context: dict) -> None:
    assert likely_causes(context) == [UNEXPLAINED]


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"every": -1}, "monitor.every"),
        ({"collapse_threshold": 1.5}, "collapse_threshold"),
        ({"patience": 0}, "monitor.patience"),
        ({"rank_drop": 1.0}, "monitor.rank_drop"),
        ({"evry": 5}, "every"),
    ],
)
def test_bad_monitor_options_are_refused_by_name(options: dict, name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        TrainConfig.from_dict({"monitor": options})


# -- through the real training loop ---------------------------------------------------------


class StandIn(torch.nn.Module):
    """The SiameseLearner interface with embeddings fixed by construction.

    ``collapsed``: every image maps to the same embedding (what a run without predictor
    and stop-gradient converges to); otherwise isotropic Gaussian embeddings.
    """

    def __init__(self, in_channels: int, image_size: int, collapsed: bool, dim: int = 8):
        super().__init__()
        self.collapsed = collapsed
        self.encoder = torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(in_channels * image_size**2, dim)
        )
        self.predictor = torch.nn.Linear(dim, dim, bias=False)
        self.register_buffer("f_hat", torch.eye(dim))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        fixed = torch.ones_like(h) if self.collapsed else torch.randn_like(h)
        return fixed + 0.0 * h  # keeps the graph so the loop's backward works

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> StepOutput:
        z1, z2 = self._embed(x1), self._embed(x2)
        loss = (self.predictor(z1) - z2).pow(2).mean()
        return StepOutput(loss, z1, z2, z1, z2)

    def update_target(self, progress: float) -> None:
        return None

    def parameter_groups(self, weight_decay: float, predictor_lr_scale: float) -> list[dict]:
        return [{"params": list(self.parameters()), "weight_decay": weight_decay}]

    def predictor_matrix(self) -> torch.Tensor:
        return self.predictor.weight

    def correlation(self) -> torch.Tensor:
        return self.f_hat


def _train(tmp_path: Path, collapsed: bool, **options: object) -> Path:
    from nocollapse.train import load_config, train

    out = tmp_path / ("collapsed" if collapsed else "healthy")
    config = load_config(None, [
        "data.name=digits", "data.batch_size=64", "data.subset=256", "data.test_subset=64",
        "log_every=1", "eval.knn_every=0", "eval.knn_k=10", "device.accelerator=cpu",
        "epochs=2", f"out={out}", "learner.predictor=none", "optim.weight_decay=0.001",
        "monitor.enabled=false",  # the test attaches its own monitor
    ])  # fmt: skip
    monitor = CollapseMonitor(
        MonitorConfig(every=1, patience=3, tensorboard=False, **options),  # type: ignore[arg-type]
        out,
        run_context(config),
        Console(file=io.StringIO()),
    )
    train(
        config,
        quiet=True,
        callbacks=[monitor],
        learner_factory=lambda _, c, size: StandIn(c, size, collapsed),
    )
    return out


def test_training_run_that_collapses_warns_and_healthy_one_does_not(tmp_path: Path) -> None:
    bad = _train(tmp_path, collapsed=True)
    warnings = _warnings(bad)
    assert len(warnings) == 1 and warnings[0]["step"] == 3
    assert any("no predictor" in c for c in warnings[0]["likely_causes"])
    good = _train(tmp_path, collapsed=False)
    assert not (good / WARNINGS_FILE).exists()
    logged = [r for r in load_run(good).metrics if "loss" in r]
    assert all("collapse_level" in r and "effective_rank" in r for r in logged)
    assert [r["epoch"] for r in load_run(good).spectra] == [1, 2]
    report = build_report([bad, good], tmp_path / "report")
    text = report.markdown.read_text()
    assert "| collapsed | training |" in text and "Collapse warnings" in text


def test_stop_on_collapse_propagates_out_of_the_loop(tmp_path: Path) -> None:
    with pytest.raises(CollapseDetected, match="step 3"):
        _train(tmp_path, collapsed=True, stop_on_collapse=True)
    assert len(_warnings(tmp_path / "collapsed")) == 1


def test_train_attaches_the_monitor_from_its_config(tmp_path: Path) -> None:
    from nocollapse.train import load_config, train

    config = load_config(None, [
        "data.name=digits", "data.batch_size=64", "data.subset=256", "data.test_subset=64",
        "log_every=2", "eval.knn_every=0", "eval.knn_k=10", "device.accelerator=cpu",
        "epochs=1", f"out={tmp_path / 'run'}", "monitor.every=2", "monitor.tensorboard=false",
    ])  # fmt: skip
    train(config, quiet=True,
          learner_factory=lambda _, c, size: StandIn(c, size, collapsed=False))
    logged = [r for r in load_run(tmp_path / "run").metrics if "loss" in r]
    assert logged and all("effective_rank" in r for r in logged)
    assert [r["epoch"] for r in load_run(tmp_path / "run").spectra] == [1]
    assert config.to_dict()["monitor"]["every"] == 2


def test_likely_causes_leave_out_a_small_weight_decay() -> None:
    causes = likely_causes({"stop_gradient": False, "weight_decay": 5e-4, "lr": 0.06})
    assert len(causes) == 1 and "no stop-gradient" in causes[0]
    assert any("weight decay" in c for c in likely_causes({"stop_gradient": False,
                                                           "weight_decay": 0.05, "lr": 0.06}))


def test_monitor_estimates_sigma2_and_tau_and_the_warning_quotes_eta_over_eta_c(
        tmp_path: Path) -> None:
    # views = mean view + noise of variance 0.25 of the data's: sigma^2 = 0.25; SimSiam
    # (EMA momentum 0): tau = 1; weight decay 0.5 > eta_c = 1/(4 * 1.25) = 0.2
    generator = torch.Generator().manual_seed(0)
    config = MonitorConfig(every=1, patience=3, tensorboard=False)
    console = Console(file=io.StringIO(), width=300)
    monitor = CollapseMonitor(config, tmp_path, {"weight_decay": 0.5}, console)
    records = []
    for step in range(1, 6):
        mean = torch.randn(4 * B, D, generator=generator)
        noise = [0.5 * torch.randn(4 * B, D, generator=generator) for _ in range(2)]
        record = {"tau": 0.0}
        monitor.on_log(step, _output(mean + noise[0], mean + noise[1]), Learner(), record)
        records.append(record)
    sigma2 = float(np.median([r["sigma2_est"] for r in records]))
    assert sigma2 == pytest.approx(0.25, rel=0.15)
    assert all(r["tau_est"] == 1.0 for r in records)  # no target given, no EMA: SimSiam
    assert all("scale_est" not in r for r in records)  # the stand-in has no output layer
    for step in range(6, 10):
        monitor.on_log(step, _collapsed(), Learner(), {"tau": 0.0})
    figure = " ".join(monitor.warnings[0]["figures"])
    assert "estimated from this run" in figure
    quoted = float(figure.split("eta/eta_c = ")[1].split(" ")[0])
    assert quoted == pytest.approx(0.5 / critical_eta(sigma2), rel=1e-2)
    assert not any("weight decay too" in c for c in monitor.warnings[0]["likely_causes"])


class LinearLearner(Learner):
    """A linear encoder ``z = h W^T`` whose loss is the theory's one-direction L2."""

    def __init__(self, W: torch.Tensor) -> None:
        super().__init__()
        self.W = W

    def output_layer(self) -> tuple[torch.Tensor, None]:
        return self.W, None

    def loss_gain(self) -> tuple[float, bool]:
        return 1.0, False


def test_monitor_reads_tau_and_the_data_scale_off_a_linear_ema_run(tmp_path: Path) -> None:
    # inputs of variance x = 4 with augmentation noise sigma^2 = 0.25 of it; the target is
    # Wa = 0.9 W (tian2021's tau); weight decay 0.5: eta_c = 4 * 0.81 / (4 * 1.25) = 0.648
    generator = torch.Generator().manual_seed(2)
    W = torch.randn(D, 24, generator=generator, dtype=torch.float64)
    monitor = CollapseMonitor(MonitorConfig(every=1, patience=3, tensorboard=False), tmp_path,
                              {"weight_decay": 0.5}, Console(file=io.StringIO(), width=300))
    records = []
    for step in range(1, 11):
        h = 2.0 * torch.randn(1024, 24, generator=generator, dtype=torch.float64)
        v1, v2 = (h + torch.randn(1024, 24, generator=generator, dtype=torch.float64)
                  for _ in range(2))
        z1, z2 = v1 @ W.T, v2 @ W.T
        output = StepOutput(torch.tensor(0.0), z1, z2, z1, z2, 0.9 * z1, 0.9 * z2)
        record: dict[str, float] = {"tau": 0.99}
        monitor.on_log(step, output, LinearLearner(W), record)
        records.append(record)
    assert all(r["tau_est"] == pytest.approx(0.9, abs=1e-12) for r in records)
    scale = float(np.median([r["scale_est"] for r in records]))
    # a mean of 1024 products each log, the median of ten: well within 10 % of x = 4
    assert scale == pytest.approx(4.0, rel=0.1)
    context = monitor.warning.context
    assert context["data_scale"] == pytest.approx(4.0, rel=0.1)
    assert context["tau"] == pytest.approx(0.9)
    figure = run_figures(context)[0]  # 0.5 / 0.648; x = 1 would have read 0.5 / 0.162
    assert float(figure.split("eta/eta_c = ")[1].split(" ")[0]) == pytest.approx(
        0.5 / critical_eta(0.25, 0.9, 4.0), rel=0.15)


def test_monitor_keeps_a_sigma2_the_caller_gave(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(1)
    monitor = CollapseMonitor(MonitorConfig(every=1, tensorboard=False), tmp_path,
                              {"weight_decay": 0.1, "sigma2": 3.0},
                              Console(file=io.StringIO()))
    for step in (1, 2, 3):
        monitor.on_log(step, _healthy(generator), Learner(), {"tau": 0.99})
    assert monitor.warning.context["sigma2"] == 3.0
    assert "estimated" not in monitor.warning.context


def test_spectra_record_gives_the_predictor_gain_along_f_hat_eigenvectors() -> None:
    # Wp = U diag(sqrt(s)) U^T shares F's eigenvectors: p_j = sqrt(s_j), paired in order
    U = torch.linalg.qr(torch.randn(D, D, generator=torch.Generator().manual_seed(3),
                                    dtype=torch.float64))[0]
    s = torch.linspace(2.0, 0.01, D, dtype=torch.float64)
    record = spectra_record(Learner(U @ torch.diag(s) @ U.T, U @ torch.diag(s.sqrt()) @ U.T),
                            None)
    np.testing.assert_allclose(record["F_eigenvalues"], s.numpy(), rtol=1e-10)
    np.testing.assert_allclose(record["Wp_in_F_basis"], s.sqrt().numpy(), rtol=1e-8)
    assert "Wp_in_F_basis" not in spectra_record(Learner(U @ torch.diag(s) @ U.T, None), None)


def test_a_run_collapsed_before_its_first_log_warns_against_the_random_init_reference(
        tmp_path: Path) -> None:
    # rank 1 from the first log: the run's own highest is 1, so only the reference can tell
    generator = torch.Generator().manual_seed(4)
    monitor = _monitor(tmp_path, collapse_threshold=1.0, min_effective_rank=0.0)
    without = _monitor(tmp_path / "without", collapse_threshold=1.0, min_effective_rank=0.0)
    reference = monitor.set_reference(_healthy(generator).z1, _healthy(generator).z2)
    assert reference["effective_rank"] > 12  # gaussian (2B, D) views: near D = 16
    for step in range(1, 5):
        batch = _rank_k(generator, 1)
        record: dict = {}
        monitor.on_log(step, batch, Learner(), record)
        without.on_log(step, batch, Learner(), {})
        if step == 1:
            assert record["init_effective_rank"] == reference["effective_rank"]
    assert not without.warnings
    assert [w["step"] for w in monitor.warnings] == [3]
    assert "random-init" in monitor.warnings[0]["reasons"][0]


def test_views_without_augmentation_signal_warn_naming_it(tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(5)
    monitor = _monitor(tmp_path, sigma2_floor=0.01)
    monitor.warning.context.clear()
    for step in range(1, 4):
        z = torch.randn(B, D, generator=generator)
        monitor.on_log(step, _output(z, z + 1e-3 * torch.randn(B, D, generator=generator)),
                       Learner(), {})
    assert [w["step"] for w in monitor.warnings] == [3]
    assert monitor.warnings[0]["likely_causes"][0].startswith("too little augmentation")


def test_an_early_fall_names_the_learning_rate_only_without_a_weight_decay_that_explains_it(
        ) -> None:
    early = {"lr": 0.06, "first_rank": 20.0, "reference_rank": 100.0, "first_step": 10}
    assert likely_causes(early)[0].startswith("learning rate too high")
    causes = likely_causes({**early, "weight_decay": 0.5})
    assert len(causes) == 1 and causes[0].startswith("weight decay too high")
