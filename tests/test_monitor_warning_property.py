"""A warning never raises: likely causes, figures and the early warning over any context."""

from __future__ import annotations

import math

from hypothesis import example, given, settings
from hypothesis import strategies as st

from nocollapse.monitor.warnings import UNEXPLAINED, EarlyWarning, likely_causes, run_figures

KEYS = ["predictor", "stop_gradient", "weight_decay", "lr", "reference_lr", "sigma2", "tau",
        "data_scale", "estimated", "first_rank", "first_step", "reference_rank", "batch_rows",
        "embedding_dim", "predictor_evidence", "stop_gradient_evidence"]
VALUES = st.one_of(
    st.none(), st.booleans(), st.sampled_from([0, 0.0, -0.0, 1, -1, math.nan, math.inf,
                                               -math.inf, 1e308, 5e-324, "none", ""]),
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6), st.text(max_size=5),
    st.lists(st.integers(), max_size=2))
CONTEXTS = st.dictionaries(st.sampled_from(KEYS), VALUES)
SCALARS = st.dictionaries(st.sampled_from(["collapse_level", "effective_rank", "sigma2_est"]),
                          VALUES)


@settings(max_examples=300, deadline=None)
@given(CONTEXTS)
# products and ratios of finite figures past float's range (found by this test)
@example({"weight_decay": 1.3407807929942597e+154, "lr": 1.3407807929942597e+154})
@example({"lr": 1e300, "reference_lr": 1e-300})
def test_likely_causes_never_raise_and_always_say_something(context: dict) -> None:
    causes = likely_causes(context)
    assert causes and all(isinstance(c, str) and c for c in causes)
    figures = run_figures(context)
    assert all(isinstance(f, str) for f in figures)
    # a cause names its evidence: one from a number that is not finite would say nan/inf
    assert not any("nan" in c.split("(")[0] or " inf " in c for c in causes if c != UNEXPLAINED)


@settings(max_examples=200, deadline=None)
@given(CONTEXTS, st.lists(SCALARS, min_size=1, max_size=6),
       st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)))
def test_the_early_warning_never_raises(context: dict, logs: list[dict],
                                        reference: float | None) -> None:
    warning = EarlyWarning(0.8, 1.5, 1, dict(context), rank_drop=0.25, sigma2_floor=0.01,
                           reference_rank=reference)
    for step, scalars in enumerate(logs):
        line = warning.update(step, scalars)
        if line is not None:
            assert line["likely_causes"] and line["reasons"]
            assert line["effective_rank"] is None or math.isfinite(line["effective_rank"])


def test_the_crash_of_the_issue_is_a_figure_now() -> None:
    # BYOL + MLP predictor, weight decay 0.5: tau_est clipped to 0 gave eta_c = 0 and a
    # ZeroDivisionError in likely_causes (issue 28)
    context = {"weight_decay": 0.5, "lr": 0.06, "sigma2": 0.4, "tau": 0.0, "estimated": True,
               "predictor": "mlp", "stop_gradient": True}
    causes = likely_causes(context)
    assert len(causes) == 1 and causes[0].startswith("weight decay too high")
    assert run_figures(context) == ["eta/eta_c not measurable (eta_c = 0 from tau=0)"]
