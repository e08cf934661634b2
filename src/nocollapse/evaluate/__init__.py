"""Evaluation on frozen features: k-NN, linear probe, the standard protocol and baselines.

>>> acc = knn_accuracy(train_feats, train_labels, test_feats, test_labels, k=200, t=0.1)
>>> acc = linear_probe(train_feats, train_labels, test_feats, test_labels, epochs=100)
>>> evaluate_features(train_feats, train_labels, test_feats, test_labels)
{'knn_k200': ..., 'knn_k20': ..., 'linear_probe': ...}
>>> measure_baselines(train, test, BaselineSetup(backbone="small_convnet"))  # cached
"""

from nocollapse.evaluate.baselines import (
    BASELINES,
    BaselineSetup,
    cached_baseline,
    measure_baselines,
)
from nocollapse.evaluate.cache import cache_dir, cached, read_cached, write_cached
from nocollapse.evaluate.features import (
    encoder_in_eval_mode,
    encoder_knn_accuracy,
    extract_features,
)
from nocollapse.evaluate.knn import knn_accuracies, knn_accuracy, knn_predict
from nocollapse.evaluate.linear_probe import linear_probe
from nocollapse.evaluate.progress import QUIET, EvalProgress
from nocollapse.evaluate.protocol import (
    FAST_BANK,
    Protocol,
    evaluate_features,
    fast_bank_indices,
    knn_key,
)
from nocollapse.evaluate.supervised import train_supervised

__all__ = ["BASELINES", "FAST_BANK", "QUIET", "BaselineSetup", "EvalProgress", "Protocol",
           "cache_dir", "cached", "cached_baseline", "encoder_in_eval_mode",
           "encoder_knn_accuracy", "evaluate_features", "extract_features", "fast_bank_indices",
           "knn_accuracies", "knn_accuracy", "knn_key", "knn_predict", "linear_probe",
           "measure_baselines", "read_cached", "train_supervised", "write_cached"]
