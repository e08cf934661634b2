"""Training config: YAML + dotted overrides, unknown keys and bad values refused clearly."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from nocollapse.errors import ConfigError
from nocollapse.methods import learner_config
from nocollapse.train.config import TrainConfig, load_config, parse_overrides
from nocollapse.train.lars import LARS
from nocollapse.train.schedule import WarmupCosine, warmup_cosine

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_overrides_win_over_yaml_and_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("method: byol\noptim:\n  lr: 0.5\n  weight_decay: 1e-6\n")
    config = load_config(path, ["optim.lr=1e-3", "data.batch_size=64", "learner.base_tau=0.99"])
    assert config.method == "byol"
    assert config.optim.lr == pytest.approx(1e-3)  # YAML would read "1e-3" as a string
    assert config.optim.weight_decay == pytest.approx(1e-6)
    assert config.data.batch_size == 64
    assert config.learner.base_tau == pytest.approx(0.99)
    assert config.learner.target == "ema"  # the rest of the byol preset


def test_learner_section_is_typed_against_the_preset_and_the_predictor_schema() -> None:
    # flat options edit the preset's predictor_options one key at a time (YAML reads 1e-3
    # as text: the predictor's schema makes it a float)
    config = load_config(None, ["method=directpred", "learner.eps=1e-3", "learner.proj_dim=64"])
    assert config.learner.predictor_options == {"rho": 0.3, "eps": 1e-3, "freq": 1}
    assert config.learner.proj_dim == 64 and config.learner.target == "ema"
    with pytest.raises(ConfigError, match=r"learner\.proj_dim='wide' is not a valid int"):
        load_config(None, ["learner.proj_dim=wide"])
    with pytest.raises(ConfigError, match=r"predictor_options\.eps='tiny' is not a valid float"):
        load_config(None, ["method=directpred", "learner.eps=tiny"])


def test_a_dotted_predictor_option_changes_that_option_only(tmp_path: Path) -> None:
    # isoloss preset: rho 0.5, eps 0, alpha 0.5, freq 1; one key must not drop the others
    config = load_config(None, ["method=isoloss", "learner.predictor_options.alpha=1"])
    assert config.learner.predictor_options == {"rho": 0.5, "eps": 0.0, "alpha": 1.0, "freq": 1}
    # the same in a YAML file's learner section, and in Python
    path = tmp_path / "c.yaml"
    path.write_text("method: directpred\nlearner:\n  predictor_options: {eps: 0.01}\n")
    assert load_config(path).learner.predictor_options == {"rho": 0.3, "eps": 0.01, "freq": 1}
    assert learner_config("directcopy", predictor_options={"rho": 0.9}).predictor_options == {
        "rho": 0.9, "eps": 0.25, "freq": 1}
    assert learner_config("directcopy").predictor_options["rho"] == 0.998  # preset not mutated


def test_round_trip_through_dict() -> None:
    config = load_config(None, ["epochs=3", "device.precision=bf16-mixed"])
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_unknown_key_names_the_closest_valid_key() -> None:
    with pytest.raises(ConfigError, match=r"optim\.weight_decay"):
        load_config(None, ["optim.weight_decy=0.1"])
    with pytest.raises(ConfigError, match=r"optim\.lr"):
        load_config(None, ["lr=0.1"])  # a top-level lr belongs to the optim section


@pytest.mark.parametrize("override,name", [("optim.lr=-0.1", "optim.lr"),
                                           ("optim.weight_decay=-1", "optim.weight_decay"),
                                           ("epochs=-2", "epochs")])
def test_negative_values_are_refused_with_their_range(override: str, name: str) -> None:
    with pytest.raises(ConfigError, match=rf"{name}=.*valid range: {name} >= 0"):
        load_config(None, [override])


def test_wrong_type_and_bad_choice_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"data\.batch_size"):
        load_config(None, ["data.batch_size=many"])
    with pytest.raises(ConfigError, match="did you mean 'lars'"):
        load_config(None, ["optim.name=lasr"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["optim.lr"])


def test_shipped_configs_load() -> None:
    paths = sorted(CONFIGS.glob("*.yaml"))
    assert paths, "configs/ ships no YAML"
    for path in paths:
        config = load_config(path)
        # the learner section was resolved against the method's preset when loading
        assert config.learner == learner_config(config.method, **config.to_dict()["learner"])


def test_schedule_endpoints() -> None:
    # Warm-up reaches base_lr on its last step, cosine ends at final_lr, monotone decay.
    assert warmup_cosine(0, 100, 10, 1.0) == pytest.approx(0.1)
    assert warmup_cosine(9, 100, 10, 1.0) == pytest.approx(1.0)
    assert warmup_cosine(10, 100, 10, 1.0) == pytest.approx(1.0)
    assert warmup_cosine(100, 100, 10, 1.0, final_lr=0.01) == pytest.approx(0.01)
    assert warmup_cosine(55, 100, 10, 1.0) == pytest.approx(0.5)
    rates = [warmup_cosine(s, 100, 10, 1.0) for s in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(rates))
    assert warmup_cosine(50, 100, 0, 0.3, cosine=False) == pytest.approx(0.3)


def test_scheduler_scales_groups_and_restores_from_state() -> None:
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([{"params": [a]}, {"params": [b], "lr_scale": 10.0}], lr=0.0)
    scheduler = WarmupCosine(optimizer, 100, 0, 0.1)
    scheduler.set(30)
    lrs = [g["lr"] for g in optimizer.param_groups]
    assert lrs[1] == pytest.approx(10 * lrs[0])
    other = WarmupCosine(optimizer, 100, 0, 0.1)
    other.load_state_dict(scheduler.state_dict())
    assert [g["lr"] for g in optimizer.param_groups] == lrs


def test_lars_scales_the_step_by_the_trust_ratio() -> None:
    w = torch.nn.Parameter(torch.full((4, 4), 2.0))  # ||w|| = 8
    bias = torch.nn.Parameter(torch.ones(4))
    optimizer = LARS([w, bias], lr=1.0, momentum=0.0, eta=0.01)
    w.grad = torch.full((4, 4), 0.5)  # ||g|| = 2 -> ratio 0.01 * 8 / 2 = 0.04
    bias.grad = torch.full((4,), 0.5)
    optimizer.step()
    assert torch.allclose(w, torch.full((4, 4), 2.0 - 0.04 * 0.5))
    assert torch.allclose(bias, torch.full((4,), 0.5))  # 1-D: plain SGD, no trust ratio


def test_lars_refuses_negative_lr() -> None:
    with pytest.raises(ConfigError, match="lr"):
        LARS([torch.nn.Parameter(torch.zeros(1))], lr=-1.0)


def test_cpu_default_yaml_matches_the_built_in_default() -> None:
    from nocollapse.train.config import CPU_DEFAULT

    assert load_config(CONFIGS / "cpu_default.yaml") == TrainConfig.from_dict(CPU_DEFAULT)


def test_device_compile_is_auto_true_or_false_and_auto_means_cuda_only() -> None:
    from nocollapse.train.setup import should_compile

    assert TrainConfig.from_dict({}).device.compile == "auto"
    assert TrainConfig.from_dict({"device": {"compile": True}}).device.compile == "true"
    with pytest.raises(ConfigError, match=r"device\.compile"):
        TrainConfig.from_dict({"device": {"compile": "sometimes"}})
    assert should_compile("auto", torch.device("cuda", 0))
    assert not should_compile("auto", torch.device("cpu"))
    assert should_compile("true", torch.device("cpu")) and not should_compile("false",
                                                                             torch.device("cuda"))
