"""Methods as presets of one SiameseLearner: byol, simsiam, directpred, directcopy, isoloss."""

from nocollapse.methods.config import PRESETS, LearnerConfig, learner_config, method_names
from nocollapse.methods.learner import SiameseLearner, StepOutput, cosine_tau
from nocollapse.methods.protocols import Learner

__all__ = ["PRESETS", "Learner", "LearnerConfig", "SiameseLearner", "StepOutput", "cosine_tau",
           "learner_config", "method_names"]
