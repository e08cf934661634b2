"""Predictors: shapes, spectral formulas (docs/theory.md#spectral-predictors), F_hat updates."""

from __future__ import annotations

import pytest
import torch

from _numeric import (
    eigh_error,
    gram_error,
    lipschitz_function_error,
    normalised_error,
    rounding_error,
    sqrt_function_error,
)
from nocollapse.errors import ConfigError
from nocollapse.predictors import (
    PREDICTORS,
    CorrelationEstimate,
    SpectralPredictor,
    build_predictor,
)

DIM = 6
# every registered kind whose entry says it keeps F_hat and builds Wp from it
SPECTRAL_KINDS = [name for name, entry in PREDICTORS.items() if entry.spectral]


def _known_correlation(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A symmetric PSD ``F`` with known eigenpairs ``(s, U)`` (one eigenvalue exactly 0)."""
    gen = torch.Generator().manual_seed(seed)
    U, _ = torch.linalg.qr(torch.randn(DIM, DIM, generator=gen, dtype=torch.float64))
    s = torch.tensor([4.0, 2.0, 1.0, 0.5, 0.1, 0.0], dtype=torch.float64)
    return (U * s) @ U.T, s, U


def _root(F: torch.Tensor) -> torch.Tensor:
    """``Z = sqrt(B) F^{1/2}`` (float64, ``B = DIM`` rows): ``Z^T Z / B = F``."""
    s, U = torch.linalg.eigh(F)
    return (U * s.clamp_min(0).sqrt()) @ U.T * DIM**0.5


def _load(pred: SpectralPredictor, F: torch.Tensor) -> None:
    """Feed ``F`` as the first batch, up to float32 rounding (``_load_error``)."""
    pred.update_correlation(_root(F).float())


def _load_error(F: torch.Tensor) -> float:
    """``||F_hat - F||_2`` after ``_load``: float32 rounding of ``Z`` and of ``Z^T Z / B``,
    plus the float64 solver's backward error (every formula test below uses it)."""
    return gram_error(_root(F)) + eigh_error(float(F.abs().sum()), DIM, torch.float64)


@pytest.mark.parametrize("kind", PREDICTORS)
def test_every_kind_maps_batch_to_same_width(kind: str) -> None:
    pred = build_predictor(kind, DIM, hidden_dim=8)
    z = torch.randn(5, DIM)
    if PREDICTORS[kind].spectral:  # the entry's flag: it is fed F_hat
        pred.update_correlation(z)
    assert pred(z).shape == (5, DIM)


def test_none_is_identity_and_linear_is_matrix_product() -> None:
    z = torch.randn(4, DIM)
    assert torch.equal(build_predictor("none", DIM)(z), z)
    lin = build_predictor("linear", DIM)
    torch.testing.assert_close(lin(z), z @ lin.matrix().T)
    assert lin.matrix().requires_grad


@pytest.mark.numerical
def test_directpred_matrix_is_formula() -> None:
    F, s, U = _known_correlation()
    eps = 0.01  # the authors' command default, also build_predictor's
    pred = build_predictor("directpred", DIM, solver="eigh")  # the exact solver
    _load(pred, F)
    p = ((s / s.max()).sqrt() + eps).clamp_min(1e-4)
    expected = (U * p) @ U.T
    # Wp - eps I = (F_hat+ / s_max)^(1/2): F_hat is F up to float32 rounding, and the zero
    # eigenvalue's perturbation comes out through the square root (sqrt_function_error);
    # plus the float32 rounding of the stored matrix. (Tuned to one CPU before: 1e-5.)
    tol = sqrt_function_error(normalised_error(_load_error(F), float(s.max())))
    tol += rounding_error(expected)
    assert tol < eps / 4  # still tight enough to see the formula's eps
    torch.testing.assert_close(pred.matrix().double(), expected, atol=tol, rtol=0)


@pytest.mark.numerical
def test_directpred_subtract_variant_is_luckmatters_dyn_eps_inside() -> None:
    # facebookresearch/luckmatters, ssl/real-dataset byol_trainer.py, option dyn_eps_inside:
    # eigenvalues normalised by the largest, the constant subtracted inside the root,
    # clamped at 1e-4: p_j = sqrt(max(s_j / s_max - c, 1e-4)). Written from that definition.
    F, s, U = _known_correlation(1)
    pred = build_predictor("directpred", DIM, subtract=0.2, solver="eigh")
    _load(pred, F)
    p = [max(float(v) / float(s.max()) - 0.2, 1e-4) ** 0.5 for v in s]
    expected = U @ torch.diag(torch.tensor(p, dtype=torch.float64)) @ U.T
    # x -> sqrt(max(x - c, 1e-4)) is 1/(2 sqrt(1e-4)) = 50-Lipschitz (steepest at the clamp)
    tol = lipschitz_function_error(50.0, normalised_error(_load_error(F), float(s.max())), DIM)
    tol += rounding_error(expected)
    torch.testing.assert_close(pred.matrix().double(), expected, atol=tol, rtol=0)
    assert min(p) == 1e-2 and max(p) < 1.0  # both branches of the clamp are exercised


@pytest.mark.numerical
def test_directcopy_matrix_is_formula() -> None:
    # default: fmi-basel/implicit-var-reg's F / s_max + eps I
    F, s, _ = _known_correlation(2)
    pred = build_predictor("directcopy", DIM)  # eps defaults to 0.25 (docs/theory.md#directcopy)
    _load(pred, F)
    expected = F / s.max() + 0.25 * torch.eye(DIM, dtype=torch.float64)
    # x -> x + eps is 1-Lipschitz; s_max from the default float32 solver (eigh_error)
    delta = _load_error(F) + eigh_error(float(s.max()), DIM)
    tol = lipschitz_function_error(1.0, normalised_error(delta, float(s.max())), DIM)
    tol += rounding_error(expected)
    torch.testing.assert_close(pred.matrix().double(), expected, atol=tol, rtol=0)


@pytest.mark.numerical
def test_directcopy_unnormalised_option_is_luckmatters_branch() -> None:
    # facebookresearch/luckmatters' directcopy branch: Wp = F + eps I, F not normalised,
    # with luckmatters' joint accumulator (the first batch initialises F_hat)
    F, _, _ = _known_correlation(2)
    pred = build_predictor("directcopy", DIM, eps=0.1, normalize=False, correlation="joint")
    _load(pred, F)
    expected = F + 0.1 * torch.eye(DIM, dtype=torch.float64)
    # no solver: the entries of F_hat's error, then the stored matrix's rounding
    tol = _load_error(F) + rounding_error(expected)
    torch.testing.assert_close(pred.matrix().double(), expected, atol=tol, rtol=0)


@pytest.mark.numerical
@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_closed_form_matrix_is_formula(alpha: float) -> None:
    F, s, U = _known_correlation(3)
    pred = build_predictor("closed-form", DIM, alpha=alpha, eps=0.05, solver="eigh")
    _load(pred, F)
    p = (s / s.max() + 0.05) ** alpha
    expected = (U * p) @ U.T
    # x -> (x + 0.05)^alpha on [0, 1]: Lipschitz constant alpha (x + 0.05)^(alpha - 1) at
    # its steepest end (x = 0 for alpha < 1, x = 1 for alpha >= 1)
    lipschitz = alpha * max(0.05 ** (alpha - 1), 1.05 ** (alpha - 1))
    tol = lipschitz_function_error(
        lipschitz, normalised_error(_load_error(F), float(s.max())), DIM)
    tol += rounding_error(expected)
    torch.testing.assert_close(pred.matrix().double(), expected, atol=tol, rtol=0)
    # closed-form with alpha = 1/2, eps = 0 is DirectPred with eps = 0 (docs/theory.md#closed-form)
    if alpha == 0.5:
        cf = build_predictor("closed-form", DIM, alpha=0.5, eps=0.0, solver="eigh")
        dp = build_predictor("directpred", DIM, eps=0.0, solver="eigh")
        _load(cf, F)
        _load(dp, F)
        # the same F_hat and solver: they differ only where DirectPred clamps p at 1e-4
        # (|p - max(p, 1e-4)| <= 1e-4, so <= 1e-4 entrywise for orthonormal U), plus the
        # float32 rounding of each stored matrix
        tol = 1e-4 + 2 * rounding_error(cf.matrix())
        torch.testing.assert_close(cf.matrix(), dp.matrix(), atol=tol, rtol=0)


@pytest.mark.numerical
def test_correlation_ema_first_batch_initialises_then_mixes() -> None:
    est = CorrelationEstimate(DIM, rho=0.3)
    a, b = torch.randn(8, DIM), torch.randn(8, DIM)
    est.update(a)
    torch.testing.assert_close(est.F_hat, a.T @ a / 8)
    est.update(b)
    torch.testing.assert_close(est.F_hat, 0.3 * (a.T @ a / 8) + 0.7 * (b.T @ b / 8))
    assert int(est.updates) == 2


def test_closed_form_correlation_is_implicit_var_reg_per_view_ema_from_zeros() -> None:
    # fmi-basel/implicit-var-reg: the correlation buffer starts at zeros and each view's
    # batch correlation z^T z / B is folded in by its own EMA update, c <- rho c + (1-rho) zz:
    # two updates a step. Written here from that definition.
    pred = build_predictor("closed-form", DIM, rho=0.9)
    gen = torch.Generator().manual_seed(5)
    views = [(torch.randn(8, DIM, generator=gen), torch.randn(8, DIM, generator=gen))
             for _ in range(3)]
    expected = torch.zeros(DIM, DIM)
    for z1, z2 in views:
        pred.update_correlation(z1, z2)
        for z in (z1, z2):
            expected = 0.9 * expected + 0.1 * (z.T @ z / z.shape[0])
    torch.testing.assert_close(pred.correlation.F_hat, expected)
    assert int(pred.correlation.updates) == 6 and int(pred.steps) == 3
    # the luckmatters start is still available: both views as one batch, first initialises
    joint = build_predictor("closed-form", DIM, rho=0.9, correlation="joint")
    joint.update_correlation(*views[0])
    both = torch.cat(views[0])
    torch.testing.assert_close(joint.correlation.F_hat, both.T @ both / 16)


def test_forward_never_updates_correlation() -> None:
    pred = build_predictor("directpred", DIM)
    z = torch.randn(8, DIM)
    pred.update_correlation(z)
    before_F, before_W = pred.correlation.F_hat.clone(), pred.matrix().clone()
    pred.train()
    pred(torch.randn(8, DIM) * 5)
    pred.eval()
    pred(torch.randn(8, DIM) * 5)
    assert torch.equal(pred.correlation.F_hat, before_F)
    assert torch.equal(pred.matrix(), before_W)


def test_freq_one_is_not_trained_freq_many_is_trained_between_rebuilds() -> None:
    fixed = build_predictor("directpred", DIM, freq=1)
    assert not any(p.requires_grad for p in fixed.parameters())
    pred = build_predictor("directpred", DIM, freq=3)
    z = torch.randn(16, DIM)
    pred.update_correlation(z)  # update 1: rebuild
    rebuilt = pred.matrix().detach().clone()
    pred(z).pow(2).sum().backward()
    assert pred.weight.grad is not None and pred.weight.grad.abs().sum() > 0
    with torch.no_grad():
        pred.weight.add_(1.0)  # stands in for an SGD step
    pred.update_correlation(z)  # update 2: not due, the trained weight survives
    torch.testing.assert_close(pred.matrix().detach(), rebuilt + 1.0)
    pred.update_correlation(z)
    pred.update_correlation(z)  # update 4: due again, overwritten by the formula
    assert not torch.allclose(pred.matrix().detach(), rebuilt + 1.0)


def test_state_dict_restores_correlation_and_matrix_exactly() -> None:
    pred = build_predictor("closed-form", DIM, alpha=1.0)
    for _ in range(3):
        pred.update_correlation(torch.randn(8, DIM))
    other = build_predictor("closed-form", DIM, alpha=1.0)
    torch.nn.Sequential(other).load_state_dict(torch.nn.Sequential(pred).state_dict())
    assert torch.equal(other.correlation.F_hat, pred.correlation.F_hat)
    assert torch.equal(other.matrix(), pred.matrix())
    assert int(other.correlation.updates) == 3
    assert other._steps == 3  # the host-side step count (rebuild schedule) restored too


@pytest.mark.parametrize(("kind", "options", "word"), [
    ("cubic", {}, "cubic"),
    ("directpred", {"rho": 1.5}, "rho=1.5"),
    ("directpred", {"freq": 0}, "freq=0"),
    ("directpred", {"eps": -1.0}, "eps"),
    ("directpred", {"tau": 0.5}, "tau"),
    ("directpred", {"update": "during"}, "during"),
    ("directpred", {"solver": "svd"}, "svd"),
    ("directpred", {"correlation": "centred"}, "centred"),
    # an option another kind has is refused by name, not ignored
    ("closed-form", {"subtract": 0.1}, "subtract"),
    ("directpred", {"normalize": False}, "normalize"),
    ("directcopy", {"alpha": 3.0}, "alpha"),
    ("directpred", {"alpha": 0.5}, "unknown directpred option 'alpha'"),
    ("directpred", {"update": "before", "background": True}, "background"),
    ("directpred", {"solve_on": "gpu"}, "solve_on"),
])
def test_bad_options_are_refused_by_name(kind: str, options: dict, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        build_predictor(kind, DIM, **options)


def _ddp_worker(rank: int, world: int, port: int, out_dir: str) -> None:
    import os

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(100 + rank)  # every rank sees different data
        pred = build_predictor("directpred", DIM, rho=0.3, eps=0.01)
        batches = [torch.randn(8, DIM) * (rank + 1) for _ in range(3)]
        for z in batches:
            pred.update_correlation(z)
        torch.save({"W": pred.matrix().detach(), "F": pred.correlation.F_hat,
                    "batches": batches}, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_process_ddp_ranks_build_the_same_directpred_matrix(tmp_path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert not torch.equal(r0["batches"][0], r1["batches"][0])
    assert torch.equal(r0["W"], r1["W"]) and torch.equal(r0["F"], r1["F"])
    # and F_hat is the EMA of the rank-mean batch correlations (the all-reduce is a mean)
    single = CorrelationEstimate(DIM, rho=0.3)
    for a, b in zip(r0["batches"], r1["batches"], strict=True):
        single.update(torch.cat([a, b]))  # equal batch sizes: mean of ranks = pooled batch
    torch.testing.assert_close(r0["F"], single.F_hat)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("background", [False, True])
def test_solving_on_the_host_gives_the_devices_matrix(background: bool) -> None:
    # solve_on=cpu copies F_hat to the host on the worker thread and the matrix back:
    # the same matrix as the on-device solve, on the device, in the weight's dtype.
    gen = torch.Generator().manual_seed(2)
    views = [torch.randn(32, DIM, generator=gen).cuda() for _ in range(2)]
    matrices = []
    for place in ("device", "cpu"):
        predictor = build_predictor("directpred", DIM, solve_on=place,
                                    background=background).cuda()
        predictor.update_correlation(*views)
        matrices.append(predictor.matrix())
    assert matrices[1].device == matrices[0].device and matrices[1].dtype == torch.float32
    # both float32 solves are exact for F_hat plus eigh_error; p = sqrt(x) + eps is
    # 1/(2 sqrt(x_min))-Lipschitz above the smallest normalised eigenvalue x_min (a 32 x 6
    # Gaussian batch's F_hat is well conditioned); plus each stored matrix's rounding
    spectrum = torch.linalg.eigvalsh(torch.cat(views).T.double() @ torch.cat(views).double())
    top, delta = float(spectrum[-1]), eigh_error(float(spectrum[-1]), DIM)
    x_min = (float(spectrum[0]) - delta) / top
    lipschitz = 1 / (2 * x_min ** 0.5)
    tol = 2 * lipschitz_function_error(lipschitz, normalised_error(delta, top), DIM)
    tol += 2 * rounding_error(matrices[0])
    torch.testing.assert_close(matrices[1], matrices[0], atol=tol, rtol=0)


@pytest.mark.parametrize("kind", SPECTRAL_KINDS)
@pytest.mark.parametrize("background", [False, True])
def test_update_after_lags_update_before_by_exactly_one_step(kind: str, background: bool) -> None:
    # facebookresearch/luckmatters sets Wp after the optimiser step: step t applies the
    # matrix of F_hat up to step t - 1, step 0 the random initial matrix.
    torch.manual_seed(0)
    after = build_predictor(kind, DIM, update="after", background=background)
    before = build_predictor(kind, DIM, update="before")
    initial = after.weight.detach().clone()
    gen = torch.Generator().manual_seed(1)
    applied_after, applied_before = [], []
    for _ in range(4):
        z1, z2 = torch.randn(8, DIM, generator=gen), torch.randn(8, DIM, generator=gen)
        out_after = after(z1)  # the learner's order with update=after: predict, then fold
        applied_after.append(after.weight.detach().clone())
        torch.testing.assert_close(out_after, z1 @ applied_after[-1].T)
        after.update_correlation(z1, z2)
        before.update_correlation(z1, z2)  # update=before: fold, then predict
        before(z1)
        applied_before.append(before.weight.detach().clone())
        torch.testing.assert_close(after.correlation.F_hat, before.correlation.F_hat)
    torch.testing.assert_close(applied_after[0], initial)
    assert not torch.allclose(applied_after[0], applied_before[0])
    for t in range(1, 4):
        torch.testing.assert_close(applied_after[t], applied_before[t - 1])
        assert not torch.allclose(applied_after[t], applied_before[t], atol=1e-3)
    torch.testing.assert_close(after.matrix(), before.matrix())  # the pending one installed


@pytest.mark.numerical
def test_waiting_matrix_is_installed_before_a_checkpoint() -> None:
    pred = build_predictor("directpred", DIM, update="after", background=True)
    pred.update_correlation(torch.randn(8, DIM))
    state = pred.state_dict()  # the matrix of this step, as after luckmatters' step
    torch.testing.assert_close(state["weight"], pred.matrix_of(pred.correlation.F_hat))


def _spread_correlation(d: int) -> torch.Tensor:
    """Full rank, eigenvalues spread over 7 decades (the small ones sqrt amplifies)."""
    gen = torch.Generator().manual_seed(7)
    U, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    return ((U * torch.logspace(0, -7, d, dtype=torch.float64)) @ U.T).float()


def _rank_deficient_correlation(d: int) -> torch.Tensor:
    """``Z^T Z / B`` with ``B = d / 4`` samples: three quarters of the eigenvalues are 0."""
    gen = torch.Generator().manual_seed(3)
    z = torch.randn(d // 4, d, generator=gen) @ torch.randn(d, d, generator=gen)
    return z.T @ z / (d // 4)


def _solver_bound(F: torch.Tensor, kind: str) -> float:
    """Entrywise bound on ``|Wp(eigh32) - Wp(eigh)|`` from each solver's backward error:
    DirectCopy uses only ``s_max`` (``F / s_max`` moves by ``delta / s_max``, first order);
    DirectPred (``eps`` added outside the root) and closed-form with ``alpha = 1/2`` are
    ``(F+ / s_max)^(1/2)`` plus a multiple of I, where a perturbation near a zero or tiny
    eigenvalue comes out through the square root (sqrt_function_error)."""
    top = float(torch.linalg.eigvalsh(F.double())[-1])
    bound = 0.0
    for dtype in (torch.float32, torch.float64):
        delta = eigh_error(top, F.shape[0], dtype)
        if kind == "directcopy":
            bound += delta / top
        else:
            bound += sqrt_function_error(normalised_error(delta, top))
    return bound + 2 * rounding_error(torch.ones(1))  # both stored as float32 (entries <= 1)


@pytest.mark.numerical
@pytest.mark.parametrize("kind", ["directpred", "directcopy", "closed-form"])  # _solver_bound's
@pytest.mark.parametrize("make", [_spread_correlation, _rank_deficient_correlation])
def test_float32_solver_error_is_bounded(kind: str, make, monkeypatch: pytest.MonkeyPatch) -> None:
    # solver=eigh32 (the default) against float64 eigh, entrywise on Wp, within the bound
    # float32 arithmetic permits (_solver_bound; measured on one CPU: 2e-5 on the spread
    # spectrum, 0.6-0.8e-4 with exact zero eigenvalues, 0 to 6e-8 for DirectCopy).
    F = make(64)
    eps = 0.0 if kind == "closed-form" else 0.01
    dtypes: list[torch.dtype] = []
    for name in ("eigh", "eigvalsh"):
        solve = getattr(torch.linalg, name)
        monkeypatch.setattr(torch.linalg, name,
                            lambda A, *a, solve=solve, **k: (dtypes.append(A.dtype),
                                                            solve(A, *a, **k))[1])
    exact = build_predictor(kind, 64, eps=eps, solver="eigh").matrix_of(F).double()
    assert set(dtypes) == {torch.float64}
    dtypes.clear()
    fast = build_predictor(kind, 64, eps=eps, solver="eigh32").matrix_of(F).double()
    assert set(dtypes) == {torch.float32}  # really the float32 code path
    error = (fast - exact).abs().max().item()
    assert error <= _solver_bound(F, kind), error
