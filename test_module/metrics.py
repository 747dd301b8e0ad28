"""Verification and classification metrics: pure functions of (scores, labels).

scores: higher means "same person" (cosine similarity); labels: 1 same, 0 different.
"""
import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import KFold


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The threshold t maximising accuracy of `score >= t`, placed midway between neighbouring scores."""
    order = np.argsort(scores, kind="stable")
    s, y = np.asarray(scores, float)[order], np.asarray(labels)[order]
    n = len(s)
    # Predicting "same" for sorted indices >= i: correct = positives at >= i + negatives at < i.
    positives_from = np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
    negatives_before = np.concatenate([[0], np.cumsum(1 - y)])
    correct = positives_from + negatives_before
    valid = np.ones(n + 1, bool)
    valid[1:n] = s[1:] != s[:-1]  # a threshold cannot split tied scores
    i = int(np.argmax(np.where(valid, correct, -1)))
    if i == 0:
        return s[0] - 1.0
    if i == n:
        return s[-1] + 1.0
    return (s[i - 1] + s[i]) / 2


def kfold_accuracy(scores: np.ndarray, labels: np.ndarray, n_folds: int = 10) -> tuple:
    """LFW protocol: for each fold, the threshold chosen on the other folds is applied to it.
    Returns (mean accuracy, std, mean threshold). Folds are consecutive, as LFW's pairs are; a list shorter
    than n_folds gets one fold per pair."""
    scores, labels = np.asarray(scores, float), np.asarray(labels)
    n_folds = min(n_folds, len(scores))
    accuracies, thresholds = [], []
    for train, test in KFold(n_splits=n_folds, shuffle=False).split(scores):
        t = best_threshold(scores[train], labels[train])
        accuracies.append(np.mean((scores[test] >= t) == labels[test]))
        thresholds.append(t)
    return float(np.mean(accuracies)), float(np.std(accuracies)), float(np.mean(thresholds))


def roc(scores: np.ndarray, labels: np.ndarray) -> tuple:
    """(fpr, tpr, thresholds) with every point kept, and the AUC."""
    fpr, tpr, thr = roc_curve(labels, scores, drop_intermediate=False)
    return fpr, tpr, thr, float(roc_auc_score(labels, scores))


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, target_fprs: tuple | list) -> dict:
    """{target: best TPR with FPR <= target}, the AUC, the lowest non-zero FPR the negatives can resolve
    (1 / #negatives: a target below it can only be met at FPR 0), and the ROC curve ("roc": fpr, tpr,
    thresholds, auc) they were read from."""
    curve = roc(scores, labels)
    fpr, tpr, _, auc = curve
    return {"tpr_at_fpr": {float(t): float(tpr[fpr <= t].max()) for t in target_fprs}, "auc": auc,
            "min_resolvable_fpr": 1.0 / int(np.sum(np.asarray(labels) == 0)), "roc": curve}


def verification_metrics(scores: np.ndarray, labels: np.ndarray, target_fprs: tuple | list = (1e-6,),
                         n_folds: int = 10) -> dict:
    """10-fold accuracy, TPR@FPR, AUC and the ROC curve ("roc") of pair scores."""
    accuracy, accuracy_std, threshold = kfold_accuracy(scores, labels, n_folds)
    return {"accuracy": accuracy, "accuracy_std": accuracy_std, "threshold": threshold,
            **tpr_at_fpr(scores, labels, target_fprs), "num_pairs": int(len(labels))}


def insightface_metrics(scores: np.ndarray, labels: np.ndarray, far_target: float = 1e-3, n_folds: int = 10) -> dict:
    """insightface's verification protocol (recognition/arcface_torch/eval/verification.py, reimplemented
    from its description), on the squared distance between unit embeddings (2 - 2 cosine): 10 consecutive
    folds (no shuffling); per fold, the threshold of a grid (0 to 4 by 0.01) with the best accuracy on the
    other nine, `distance < threshold` meaning same; the mean and std of the fold accuracies ("Accuracy-Flip"
    when the embeddings are those of the image plus its flip). VAL@FAR: per fold, the threshold (grid by
    0.001) at which the other folds' FAR equals the target, by linear interpolation between the two grid
    points around it (0 when they never reach it); the mean and std of the fold's VAL, and the mean FAR reached."""
    distances, same = 2.0 - 2.0 * np.asarray(scores, float), np.asarray(labels).astype(bool)
    folds = list(KFold(n_splits=min(n_folds, len(same)), shuffle=False).split(distances))
    grid = np.arange(0, 4, 0.01)
    accuracies = []
    for train, test in folds:
        accepted = distances[train, None] < grid[None, :]
        best = grid[np.argmax((accepted == same[train, None]).mean(0))]
        accuracies.append(np.mean((distances[test] < best) == same[test]))
    fine_grid, vals, fars = np.arange(0, 4, 0.001), [], []
    for train, test in folds:
        impostors = np.sort(distances[train][~same[train]])
        far_train = np.searchsorted(impostors, fine_grid, side="left") / max(len(impostors), 1)
        if far_train.max() >= far_target:
            # FARs tie along the grid; the crossing lies between the last threshold at or below the target
            # and the next one
            k = min(int(np.searchsorted(far_train, far_target, side="right")) - 1, len(fine_grid) - 2)
            threshold = float(np.interp(far_target, far_train[k:k + 2], fine_grid[k:k + 2]))
        else:
            threshold = 0.0
        val, far = _val_far(distances[test], same[test], threshold)
        vals.append(val)
        fars.append(far)
    return {"accuracy": float(np.mean(accuracies)), "accuracy_std": float(np.std(accuracies)),
            "protocol": "insightface", "far_target": far_target, "val_at_far": float(np.mean(vals)),
            "val_std": float(np.std(vals)), "far": float(np.mean(fars))}


def _val_far(distances: np.ndarray, same: np.ndarray, threshold: float) -> tuple:
    """(share of genuine pairs accepted, share of impostor pairs accepted) at `distance < threshold`."""
    accepted = distances < threshold
    return (float(np.sum(accepted & same)) / max(int(same.sum()), 1),
            float(np.sum(accepted & ~same)) / max(int((~same).sum()), 1))
