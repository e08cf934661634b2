"""Predictors: none, linear, MLP, and the spectral ones built from ``F_hat``."""

from nocollapse.predictors.correlation import CorrelationEstimate
from nocollapse.predictors.registry import PREDICTORS, LinearPredictor, build_predictor
from nocollapse.predictors.spectral import SPECTRAL, SpectralPredictor, spectral_matrix

__all__ = ["PREDICTORS", "SPECTRAL", "CorrelationEstimate", "LinearPredictor",
           "SpectralPredictor", "build_predictor", "spectral_matrix"]
