import numpy as np
import pytest

from compression_tool.test_module.metrics import best_threshold, kfold_accuracy, tpr_at_fpr, verification_metrics


def test_best_threshold_separable():
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert best_threshold(scores, labels) == pytest.approx(0.5)


def test_best_threshold_does_not_split_ties():
    scores = np.array([0.5, 0.5, 0.5, 0.9])
    labels = np.array([0, 1, 1, 1])
    # Splitting the tied 0.5s would claim 4/4; without splitting, the best is "all same": 3/4, t below 0.5.
    t = best_threshold(scores, labels)
    assert t < 0.5 and np.mean((scores >= t) == labels) == 0.75


def test_kfold_accuracy_hand_computed():
    # 10 folds of two pairs; one impostor scores above every genuine pair in fold 0: that fold is 1/2 right.
    scores = np.array([0.9, 0.95] + [0.8, 0.1] * 9)
    labels = np.array([1, 0] + [1, 0] * 9)
    accuracy, std, _ = kfold_accuracy(scores, labels, 10)
    assert accuracy == pytest.approx((0.5 + 9 * 1.0) / 10)
    assert std == pytest.approx(np.std([0.5] + [1.0] * 9))


def test_tpr_at_fpr_hand_computed():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.85, 0.5, 0.4, 0.3])
    labels = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    result = tpr_at_fpr(scores, labels, [0.0, 0.25, 1.0])
    assert result["tpr_at_fpr"] == {0.0: 0.25, 0.25: 1.0, 1.0: 1.0}
    assert result["min_resolvable_fpr"] == 0.25 and result["auc"] == pytest.approx(13 / 16)
    fpr, tpr, _, auc = result["roc"]
    assert auc == result["auc"] and fpr[-1] == tpr[-1] == 1.0


def test_verification_metrics_keys():
    rng = np.random.default_rng(0)
    labels = np.repeat([1, 0], 50)
    scores = labels + rng.normal(0, 0.3, 100)
    result = verification_metrics(scores, labels, (1e-2,))
    assert {"accuracy", "auc", "tpr_at_fpr", "num_pairs"} <= set(result)
    assert 0.9 < result["auc"] <= 1.0
