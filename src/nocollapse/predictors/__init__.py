"""Predictors: none, linear, MLP, and the spectral kinds built from ``F_hat``."""

from nocollapse.predictors.correlation import CorrelationEstimate
from nocollapse.predictors.entry import PredictorEntry
from nocollapse.predictors.options import Option, OptionSchema, check_options
from nocollapse.predictors.protocols import CorrelationPredictor, MatrixPredictor
from nocollapse.predictors.registry import (
    PREDICTORS,
    LinearPredictor,
    build_predictor,
    check_predictor_options,
    predictor_entry,
    register_predictor,
)
from nocollapse.predictors.spectral import SPECTRAL_OPTIONS, SpectralPredictor, spectral_entry

__all__ = ["PREDICTORS", "SPECTRAL_OPTIONS", "CorrelationEstimate", "CorrelationPredictor",
           "LinearPredictor", "MatrixPredictor", "Option", "OptionSchema", "PredictorEntry",
           "SpectralPredictor", "build_predictor", "check_options", "check_predictor_options",
           "predictor_entry", "register_predictor", "spectral_entry"]
