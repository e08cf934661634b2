"""``nocollapse.Monitor`` in a plain PyTorch loop: the run files, report, no effect on the
user's tensors or gradients, refusals by name, and a resume that warns as one run."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console

import nocollapse
from nocollapse.errors import ConfigError
from nocollapse.monitor import CollapseDetected, Monitor, MonitorInputError
from nocollapse.report import build_report, load_run
from nocollapse.runio import MONITOR_KEYS, read_metrics

B, D_IN, D = 32, 12, 8


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


class Tiny(torch.nn.Module):
    """Encoder + linear predictor, SimSiam-style; ``stop_gradient`` and ``predictor`` switch."""

    def __init__(self, predictor: bool = True, stop_gradient: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoder = torch.nn.Sequential(torch.nn.Linear(D_IN, 16), torch.nn.ReLU(),
                                           torch.nn.Linear(16, D))
        self.predictor = torch.nn.Linear(D, D, bias=False) if predictor else torch.nn.Identity()
        self.stop_gradient = stop_gradient

    def forward(self, x1: torch.Tensor, x2: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z1, z2 = self.encoder(x1), self.encoder(x2)
        p1, p2 = self.predictor(z1), self.predictor(z2)
        t1, t2 = (z1.detach(), z2.detach()) if self.stop_gradient else (z1, z2)
        cos = torch.nn.functional.cosine_similarity
        loss = -(cos(p1, t2).mean() + cos(p2, t1).mean()) / 2
        return loss, z1, z2


def _loop(model: Tiny, steps: int, monitor: Monitor | None = None, every_epoch: int = 10,
          lr: float = 0.05, snapshot: bool = False) -> list[torch.Tensor]:
    """``snapshot``: pass the predictor's matrix as a copy taken at the step (a replayed
    step then sees the matrix it saw the first time), else the live module."""
    generator = torch.Generator().manual_seed(1)
    data = torch.randn(256, D_IN, generator=generator)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    grads = []
    for step in range(steps):
        x = data[torch.randint(0, 256, (B,), generator=generator)]
        x1 = x + 0.1 * torch.randn(x.shape, generator=generator)
        x2 = x + 0.1 * torch.randn(x.shape, generator=generator)
        loss, z1, z2 = model(x1, x2)
        if monitor is not None:
            predictor = model.predictor
            if snapshot and isinstance(predictor, torch.nn.Linear):
                predictor = predictor.weight.detach().clone()
            monitor.observe(step, z1, z2, predictor=predictor, loss=loss)
        optimizer.zero_grad()
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
        optimizer.step()
        if monitor is not None and (step + 1) % every_epoch == 0:
            monitor.end_epoch((step + 1) // every_epoch)
    return grads


def test_monitor_is_the_public_api() -> None:
    assert nocollapse.Monitor is Monitor


def test_a_plain_loop_gets_the_run_files_and_a_report(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with Monitor(run, every=5, console=_quiet()) as monitor:
        _loop(Tiny(), 20, monitor)
    logged = [r for r in read_metrics(run) if "loss" in r]
    assert [r["step"] for r in logged] == [0, 5, 10, 15]
    assert all(set(MONITOR_KEYS) <= r.keys() and isinstance(r["loss"], float) for r in logged)
    spectra = read_metrics(run / "spectra.jsonl")
    assert [s["epoch"] for s in spectra] == [1, 2]
    # F_hat and a linear Wp of the embeddings' width: the predictor's spectra are there
    assert len(spectra[-1]["Wp_eigenvalues"]) == D and len(spectra[-1]["F_eigenvalues"]) == D
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped"] == "completed" and summary["step"] == 19
    report = build_report([run], tmp_path / "report")
    assert (tmp_path / "report" / "run-Wp_eigenvalues.png").exists(), report


def test_without_a_predictor_matrix_the_spectral_parts_are_skipped_and_the_report_says_why(
        tmp_path: Path) -> None:
    run = tmp_path / "run"
    with Monitor(run, every=5, console=_quiet()) as monitor:
        _loop(Tiny(predictor=False), 20, monitor)
    spectra = read_metrics(run / "spectra.jsonl")
    assert "Wp_eigenvalues" not in spectra[-1] and "F_eigenvalues" in spectra[-1]
    assert spectra[-1]["skipped"]["Wp_eigenvalues"] == "the run has no predictor"
    build_report([run], tmp_path / "report")
    text = (tmp_path / "report" / "report.md").read_text()
    assert "no Wp_eigenvalues in spectra.jsonl: the run has no predictor" in text


def test_observe_changes_neither_the_tensors_nor_the_gradients(tmp_path: Path) -> None:
    plain = _loop(Tiny(), 12)
    model = Tiny()
    monitored = _loop(model, 12, Monitor(tmp_path / "run", every=1, console=_quiet()))
    assert all(torch.equal(a, b) for a, b in zip(plain, monitored, strict=True))
    z = torch.randn(B, D, requires_grad=True)
    before = z.detach().clone()
    Monitor(tmp_path / "other", every=1, console=_quiet()).observe(0, z * 2, z + 1)
    assert torch.equal(z.detach(), before) and z.grad is None


@pytest.mark.parametrize(("z1", "z2", "phrase"), [
    (torch.randn(B, D), torch.randn(B + 1, D), "same shape"),
    (torch.randn(B, D, 1), torch.randn(B, D, 1), "expected (batch, dim)"),
    (torch.full((B, D), float("nan")), torch.randn(B, D), "NaN or infinite"),
    (torch.randn(B, D), [[0.0] * D] * B, "z2 is a list"),
    (torch.ones(B, D, dtype=torch.long), torch.ones(B, D, dtype=torch.long), "floating dtype"),
])
def test_bad_embeddings_are_refused_by_name(tmp_path: Path, z1: object, z2: object,
                                            phrase: str) -> None:
    monitor = Monitor(tmp_path / "run", every=1, console=_quiet())
    with pytest.raises(MonitorInputError, match=r"z[12]") as error:
        monitor.observe(0, z1, z2)  # type: ignore[arg-type]
    assert phrase in str(error.value)
    assert read_metrics(tmp_path / "run") == []  # nothing logged


def test_other_bad_input_is_refused_by_name(tmp_path: Path) -> None:
    monitor = Monitor(tmp_path / "run", every=1, console=_quiet())
    z = torch.randn(B, D)
    with pytest.raises(MonitorInputError, match=r"predictor matrix has shape \(3, 3\)"):
        monitor.observe(0, z, z, predictor=torch.eye(3))
    with pytest.raises(MonitorInputError, match=r"target_momentum=1\.5"):
        monitor.observe(0, z, z, target_momentum=1.5)
    with pytest.raises(MonitorInputError, match=r"loss has shape \(2,\)"):
        monitor.observe(0, z, z, loss=torch.ones(2))
    monitor.observe(3, z, z)
    with pytest.raises(MonitorInputError, match="step=3 is not after"):
        monitor.observe(3, z, z)
    monitor.end_epoch(1)
    with pytest.raises(MonitorInputError, match="epoch=1 must be a whole number >= 2"):
        monitor.end_epoch(1)
    with pytest.raises(ConfigError, match="unknown monitor option evry"):
        Monitor(tmp_path / "new", evry=5)
    with pytest.raises(ConfigError, match=r"monitor\.patience"):
        Monitor(tmp_path / "new", patience=0)
    with pytest.raises(ConfigError, match="already holds a run"):
        Monitor(tmp_path / "run")
    assert not (tmp_path / "new").exists()  # refused before anything was created


def test_collapse_warns_naming_the_missing_stop_gradient_and_can_stop(tmp_path: Path) -> None:
    # no stop-gradient: the embeddings shrink to one point (tian2021 Theorem 2)
    run = tmp_path / "run"
    with pytest.raises(CollapseDetected, match="no stop-gradient"), \
            Monitor(run, every=5, stop_gradient=False, stop_on_collapse=True,
                    console=_quiet()) as monitor:
        _loop(Tiny(stop_gradient=False), 100, monitor, lr=0.5)
    warning = read_metrics(run / "warnings.jsonl")[0]
    assert any("no stop-gradient" in cause for cause in warning["likely_causes"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped"] == f"collapse at step {warning['step']}"
    assert max(r["step"] for r in read_metrics(run)) == warning["step"]  # its line is written
    assert load_run(run).warnings == [warning]


class _Handover:
    """A loop whose state is saved at step ``at`` and that is killed at ``kill`` (lines
    of the steps between already written): a new Monitor(resume=True) loads the saved
    state (through torch.save / weights_only load) and the lost steps are replayed."""

    def __init__(self, run: Path, at: int, kill: int) -> None:
        self.run, self.at, self.kill = run, at, kill
        self.current = Monitor(run, every=5, stop_gradient=False, console=_quiet(),
                               sigma2_floor=0.0)
        self.since_save: list[tuple[str, tuple, dict]] = []

    def _call(self, name: str, *args: object, **kwargs: object) -> None:
        if self.since_save or (name == "observe" and args[0] == self.at):
            if not self.since_save:
                torch.save(self.current.state_dict(), self.run.parent / "state.pt")
            self.since_save.append((name, args, kwargs))
        if name == "observe" and args[0] == self.kill:
            assert self.current._writer is not None
            self.current._writer.close()  # killed: no summary, no close()
            assert self.current._lock is not None
            self.current._lock.release()  # as the process's death drops its run lock
            self.current = Monitor(self.run, every=5, resume=True, console=_quiet())
            self.current.load_state_dict(torch.load(self.run.parent / "state.pt",
                                                    weights_only=True))
            for replay, replay_args, replay_kwargs in self.since_save[:-1]:
                getattr(self.current, replay)(*replay_args, **replay_kwargs)
            self.since_save = []
            self.at = -1
        getattr(self.current, name)(*args, **kwargs)

    def observe(self, *args: object, **kwargs: object) -> None:
        self._call("observe", *args, **kwargs)

    def end_epoch(self, epoch: int) -> None:
        self._call("end_epoch", epoch)


def test_resumed_monitor_writes_what_an_uninterrupted_one_writes(tmp_path: Path) -> None:
    # the rank test alone (sigma2_floor 0): its warning comes after the saved state
    whole = Monitor(tmp_path / "whole", every=5, stop_gradient=False, console=_quiet(),
                    sigma2_floor=0.0)
    _loop(Tiny(stop_gradient=False), 40, whole, lr=0.5, snapshot=True)
    whole.close()
    # it warns after the saved state, with suspect logs before it (the streak crosses it)
    assert [w["step"] for w in whole.warnings] == [20]
    # saved at step 12, killed at 23: steps 12-22 and epoch 2's spectra were written
    # after the state and must go, then come back once
    split = _Handover(tmp_path / "split", at=12, kill=23)
    _loop(Tiny(stop_gradient=False), 40, split, lr=0.5, snapshot=True)  # type: ignore[arg-type]
    split.current.close()
    for name in ("warnings.jsonl", "spectra.jsonl", "metrics.jsonl"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "split" / name).read_bytes()


@pytest.mark.parametrize(("detach", "targets", "expected"), [
    (True, False, True),    # views detached as lightly returns them
    (False, False, False),  # views that carry gradient, no targets given
    (False, True, True),    # the loss's detached targets given
])
def test_the_stop_gradient_is_inferred_as_the_lightning_callback_infers_it(
        tmp_path: Path, detach: bool, targets: bool, expected: bool) -> None:
    monitor = Monitor(tmp_path / "run", every=1, console=_quiet())
    z1, z2 = Tiny().encoder(torch.randn(B, D_IN)), Tiny().encoder(torch.randn(B, D_IN))
    views = (z1.detach(), z2.detach()) if detach else (z1, z2)
    monitor.observe(0, *views, targets=(z2.detach(), z1.detach()) if targets else None)
    context = monitor.core.warning.context
    assert context["stop_gradient"] is expected
    assert ("carry gradient" in str(context["stop_gradient_evidence"])) is not expected
    declared = Monitor(tmp_path / "declared", stop_gradient=True, console=_quiet())
    declared.observe(0, z1, z2)
    assert declared.core.warning.context["stop_gradient"] is True  # a declared fact stays


def test_close_says_when_end_epoch_was_never_called(tmp_path: Path) -> None:
    out = io.StringIO()
    monitor = Monitor(tmp_path / "run", every=5, console=Console(file=out, width=300))
    _loop(Tiny(), 10, monitor, every_epoch=1000)
    monitor.close()
    note = json.loads((tmp_path / "run" / "summary.json").read_text())["note"]
    assert "end_epoch() was never called" in note and "end_epoch() was never called" in \
        out.getvalue()
    ended = Monitor(tmp_path / "ended", every=5, console=_quiet())
    _loop(Tiny(), 10, ended, every_epoch=5)
    ended.close()
    assert json.loads((tmp_path / "ended" / "summary.json").read_text())["note"] is None
