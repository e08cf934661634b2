"""The theory models' and the training losses' outputs, pinned before the loss table came in.

References computed with the code before ``nocollapse.diagnostics.loss_definitions`` existed
(commit 4c91c2b): naming the losses by one table changed no number. Each case is reduced to
a fingerprint (the sum, and an index-weighted mean) of short runs and single evaluations.
Tolerance: relative 1e-9 (absolute 1e-12 near zero): the runs are 20-30 steps of a
contracting or slowly growing float64 iteration, so a BLAS path's rounding (1e-16 a
product) stays below 1e-12 relative; a changed constant (a factor 2, a dropped 1/2, another
sign) moves them by order 1.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nocollapse.losses import LOSSES, Direction
from nocollapse.theory import (
    bao2023,
    bao2023_sim,
    halvagal2023,
    halvagal2023_expected,
    linear_sgd,
)
from nocollapse.theory import halvagal2023_sim as toy
from nocollapse.theory.linear_flow import FlowConfig

pytestmark = pytest.mark.numerical  # eigensolvers and products through BLAS (docstring)

PINS: dict[str, list[float]] = {
    "toy/l2/target": [
        6.9691398331163725, 3.478881830892016, -0.7216893383504779, -0.40229614363558425,
    ],
    "toy/l2/both": [6.962679455751269, 3.47477036146946, -0.7220956568537484, -0.40240315748579086],
    "mode_rhs/l2": [-11.808, -11.7264],
    "expected_rhs/l2": [-8.097439829333137, -8.226599942570465],
    "toy/isoloss-l2/target": [
        7.632021077468728, 3.9504042082734885, -0.7868151580387341, -0.42750280591620743,
    ],
    "toy/isoloss-l2/both": [
        7.626523551499576, 3.946774133961847, -0.7888151331521399, -0.428617618015791,
    ],
    "mode_rhs/isoloss-l2": [-5.856, -6.0],
    "expected_rhs/isoloss-l2": [-3.64783159896999, -4.0341723163628735],
    "toy/cosine/target": [
        6.6165897761215975, 3.3176857250410676, -0.6785051891893601, -0.31593378174137965,
    ],
    "toy/cosine/both": [
        6.619851799542621, 3.3203912271441305, -0.7002673066743494, -0.3259084419159829,
    ],
    "mode_rhs/cosine": [1.942890293094024e-16, -0.08373856824303033],
    "expected_rhs/cosine": [-1.3877787807814457e-16, -0.0826122333977922],
    "toy/isoloss-cosine/target": [
        8.020642431259546, 4.25524005990765, -0.7625368182910006, -0.34231116019121616,
    ],
    "toy/isoloss-cosine/both": [
        8.039743067558295, 4.267303765788523, -0.8020051217325307, -0.3604160549819699,
    ],
    "mode_rhs/isoloss-cosine": [0.16183099105711402, 0.03635060184188392],
    "expected_rhs/isoloss-cosine": [0.20043307858686743, 0.03148663741065291],
    "toy-nosg/l2": [
        5.970578347035866, 2.7878012806456147, -0.6140558064342213, -0.34839173344127466,
    ],
    "simsiam/l2": [
        7.092787950920698, 2.752066833958015, 9.943068459080862, 4.598454877620126,
        5.227871231857404, 2.9937071071549193,
    ],
    "reduced/l2": [-0.18060000000000015, -0.19950000000000012],
    "sgd/l2": [-8.539076375468836, -4.533847300988371, 10.932487904581832, 5.907196944092416],
    "toy-nosg/cosine": [
        6.626260158530662, 3.199436468439126, -0.7332289138368158, -0.45882831210160724,
    ],
    "simsiam/cosine": [
        8.373442240307789, 3.4311391309822596, 10.738540487369928, 5.036023908918374,
        5.731617144437124, 3.35860277407049,
    ],
    "reduced/cosine": [-0.10098888376708043, -0.11743841783133639],
    "sgd/cosine": [-8.057740841978047, -4.165179504394101, 7.373180905366082, 3.7528242259931948],
    "base_loss/l2": [3.54206798721131],
    "base_grads/l2": [
        -15.851831957591985, -8.553763044209958, 15.851831957591985, 8.553763044209958,
    ],
    "iso_surrogate/l2": [2.3072031146178476],
    "sgd_loss/l2": [3.54206798721131],
    "sgd_grads/l2": [
        -1.7613146619546645, -0.9504181160233287, 1.7613146619546645, 0.9504181160233287,
    ],
    "base_loss/cosine": [1.0846156644997553],
    "base_grads/cosine": [
        -0.32219813729886104, 0.32092027634234943, 4.180866525365289, 1.9568506426443548,
    ],
    "iso_surrogate/cosine": [-0.11470207133799021],
    "sgd_loss/cosine": [0.08461566449976161],
    "sgd_grads/cosine": [
        -0.0357997930333474, 0.03565780848254407, 0.4645407250410156, 0.2174278491828099,
    ],
    "train/l2": [4.7244679581454365, 0.0, 0.0, -3.524799852863434, -1.5202191364286526],
    "train-flags/l2": [2.0, 0.0, 0.0, 0.0, 0.0],
    "train/normalized-l2": [
        1.2702187487905392, 0.0, 0.0, -0.2131253307662341, -0.02003509697766924,
    ],
    "train-flags/normalized-l2": [2.0, 1.0, 0.0, 0.0, 0.0],
    "train/cosine": [-0.3648906256047304, 0.0, 0.0, -0.10656266538311705, -0.01001754848883462],
    "train-flags/cosine": [1.0, 1.0, 0.0, 0.0, 0.0],
    "train/isoloss-l2": [4.724467958145437, -3.524799852863434, -1.5202191364286526, 0.0, 0.0],
    "train-flags/isoloss-l2": [2.0, 0.0, 0.0, 1.0, 1.0],
    "train/isoloss-cosine": [
        0.47673376359455233, -0.38147556421181616, -0.13226254144558647, 0.0, 0.0,
    ],
    "train-flags/isoloss-cosine": [2.0, 1.0, 1.0, 1.0, 1.0],
}


def _fingerprint(a: object) -> list[float]:
    x = np.asarray(a, dtype=float).ravel()
    weights = np.arange(1, x.size + 1)
    return [float(x.sum()), float((weights * x).sum() / x.size)]


def _computed() -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    s = np.array([0.3, 0.8, 1.1, 2.0])
    for loss in toy.LOSSES:
        for augment in ("target", "both"):
            run = toy.simulate_toy(toy.ToyConfig(n=6, m=4, loss=loss, steps=25, samples=300,
                                                 record_every=5, augment=augment))
            out[f"toy/{loss}/{augment}"] = _fingerprint(run.eigenvalues) + _fingerprint(run.W)
        out[f"mode_rhs/{loss}"] = _fingerprint(halvagal2023.mode_rhs(loss, 0.2, 1.0, "both")(0, s))
        rhs = halvagal2023_expected.expected_mode_rhs(loss, 0.2, 4, samples=500)
        out[f"expected_rhs/{loss}"] = _fingerprint(rhs(0.0, s))
    for loss in ("l2", "cosine"):
        run = toy.simulate_toy(toy.ToyConfig(n=6, m=4, loss=loss, steps=25, samples=300,
                                             record_every=5, stop_grad=False))
        out[f"toy-nosg/{loss}"] = _fingerprint(run.eigenvalues) + _fingerprint(run.W)
        sim = bao2023_sim.simulate_simsiam(bao2023_sim.SimSiamConfig(
            n1=6, n2=4, loss=loss, steps=30, samples=64, record_every=10))
        out[f"simsiam/{loss}"] = (_fingerprint(sim.eigenvalues) + _fingerprint(sim.p)
                                  + _fingerprint(sim.norm_phi))
        reduced = bao2023.reduced_rhs(loss, 0.1, 0.3)(0.0, np.array([0.2, 0.5, 0.9]))
        out[f"reduced/{loss}"] = _fingerprint(reduced)
        rng = np.random.default_rng(3)
        cfg = FlowConfig(X=np.eye(5), Xp=0.1 * np.eye(5), eta=0.01, alpha_p=1.0, beta=None)
        W0, Wp0 = rng.standard_normal((3, 5)) * 0.5, np.eye(3) * 0.5
        flow = linear_sgd.sgd_simulate(Wp0, W0, cfg, lr=0.05, steps=20, samples=50, loss=loss,
                                       record_every=5)
        out[f"sgd/{loss}"] = _fingerprint(flow.W) + _fingerprint(flow.Wp)
    rng = np.random.default_rng(7)
    P, Z, Zr = (rng.standard_normal((9, 4)) for _ in range(3))
    A = rng.standard_normal((4, 4))
    Wp = A @ A.T / 4 + 0.1 * np.eye(4)
    for kind in ("l2", "cosine"):
        out[f"base_loss/{kind}"] = [toy.base_loss(P, Z, kind)]
        g_p, g_z = toy.base_loss_grads(P, Z, kind)
        out[f"base_grads/{kind}"] = _fingerprint(g_p) + _fingerprint(g_z)
        out[f"iso_surrogate/{kind}"] = [toy.iso_surrogate(Zr, Zr, Z, Wp, kind)]
        out[f"sgd_loss/{kind}"] = [linear_sgd.loss_value(P, Z, kind)]
        g_p, g_z = linear_sgd.output_grads(P, Z, kind)
        out[f"sgd_grads/{kind}"] = _fingerprint(g_p) + _fingerprint(g_z)
    generator = torch.Generator().manual_seed(11)
    z, p, t = (torch.randn(9, 4, generator=generator, dtype=torch.float64) for _ in range(3))
    for name in PINS_TRAINING:
        entry = LOSSES[name]
        z_leaf, p_leaf = z.clone().requires_grad_(), p.clone().requires_grad_()
        value = entry.fn(Direction(z_leaf, p_leaf, t, torch.tensor(Wp)))
        value.backward()
        grads = [x.grad.numpy() if x.grad is not None else 0.0 for x in (z_leaf, p_leaf)]
        out[f"train/{name}"] = [float(value.detach()), *_fingerprint(grads[0]),
                                *_fingerprint(grads[1])]
        out[f"train-flags/{name}"] = [entry.gain, float(entry.normalised),
                                      float(entry.needs_matrix), float(entry.needs_spectral),
                                      float(entry.detaches_target)]
    return out


PINS_TRAINING = ("l2", "normalized-l2", "cosine", "isoloss-l2", "isoloss-cosine")


@pytest.fixture(scope="module")
def computed() -> dict[str, list[float]]:
    return _computed()


@pytest.mark.parametrize("case", sorted(PINS))
def test_output_is_unchanged(case: str, computed: dict[str, list[float]]) -> None:
    np.testing.assert_allclose(computed[case], PINS[case], rtol=1e-9, atol=1e-12)


def test_every_pinned_case_is_computed(computed: dict[str, list[float]]) -> None:
    assert set(computed) == set(PINS)
