"""Predictors: none, linear, MLP, and the spectral ones built from ``F_hat``."""

from nocollapse.predictors.correlation import CorrelationEstimate
from nocollapse.predictors.options import Option, OptionSchema, check_options
from nocollapse.predictors.protocols import CorrelationPredictor, MatrixPredictor
from nocollapse.predictors.registry import (
    PREDICTORS,
    LinearPredictor,
    PredictorEntry,
    build_predictor,
    predictor_entry,
    register_predictor,
)
from nocollapse.predictors.spectral import (
    SPECTRAL,
    SPECTRAL_OPTIONS,
    SpectralPredictor,
    spectral_matrix,
)

__all__ = ["PREDICTORS", "SPECTRAL", "SPECTRAL_OPTIONS", "CorrelationEstimate",
           "CorrelationPredictor", "LinearPredictor", "MatrixPredictor", "Option",
           "OptionSchema", "PredictorEntry", "SpectralPredictor", "build_predictor",
           "check_options", "predictor_entry", "register_predictor", "spectral_matrix"]
