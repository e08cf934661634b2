"""``PredictorEntry``: what the registry holds for one predictor kind."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from torch import nn

from nocollapse.predictors.options import OptionSchema, OptionValue

# build(dim, hidden_dim, **options) -> the predictor module; ``options`` holds every option
# of the entry's schema (the given value, else the schema's default).
PredictorBuilder = Callable[..., nn.Module]


@dataclass(frozen=True)
class PredictorEntry:
    """A predictor's builder, its options schema and a line of help.

    ``spectral``: its matrix is built in closed form from the ``F_hat`` it keeps itself
    (a ``CorrelationPredictor``; IsoLoss may use it). ``check_together(options)``: refuses
    options that are valid one by one but not together (before anything is built).
    """

    build: PredictorBuilder
    help: str
    options: OptionSchema = field(default_factory=dict)
    spectral: bool = False
    check_together: Callable[[Mapping[str, OptionValue]], None] | None = None
