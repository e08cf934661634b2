"""Predictors: none, linear, MLP, and the spectral ones built from ``F_hat``."""

from nocollapse.predictors.correlation import CorrelationEstimate
from nocollapse.predictors.registry import (
    PREDICTORS,
    SPECTRAL_OPTIONS,
    LinearPredictor,
    build_predictor,
)
from nocollapse.predictors.spectral import SPECTRAL, SpectralPredictor, spectral_matrix

__all__ = ["PREDICTORS", "SPECTRAL", "SPECTRAL_OPTIONS", "CorrelationEstimate", "LinearPredictor",
           "SpectralPredictor", "build_predictor", "spectral_matrix"]
