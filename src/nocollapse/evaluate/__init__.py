"""Evaluation on frozen features: the weighted k-NN monitor and the linear probe.

>>> acc = knn_accuracy(train_feats, train_labels, test_feats, test_labels, k=200, t=0.1)
>>> acc = linear_probe(train_feats, train_labels, test_feats, test_labels, epochs=100)
"""

from nocollapse.evaluate.features import (
    encoder_in_eval_mode,
    encoder_knn_accuracy,
    extract_features,
)
from nocollapse.evaluate.knn import knn_accuracy, knn_predict
from nocollapse.evaluate.linear_probe import linear_probe

__all__ = ["encoder_in_eval_mode", "encoder_knn_accuracy", "extract_features", "knn_accuracy",
           "knn_predict", "linear_probe"]
