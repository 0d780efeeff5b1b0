"""Classification metrics (scikit-learn): accuracy, mAP over classes, macro-F1."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, average_precision_score, f1_score


def accuracy(logits: np.ndarray, y: np.ndarray) -> float:
    return float(accuracy_score(y, np.asarray(logits).argmax(1)))


def mean_average_precision(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean over classes of the average precision of that class's score (one-vs-rest),
    the mAP that AVE / Kinetics-Sounds papers report. Classes absent from y are skipped."""
    logits = np.asarray(logits, dtype=np.float64)
    # not label_binarize: for 2 classes it returns a single column
    onehot = (np.asarray(y).reshape(-1, 1) == np.arange(logits.shape[1])).astype(np.int64)
    present = onehot.sum(0) > 0
    return float(average_precision_score(onehot[:, present], logits[:, present], average="macro"))


def macro_f1(logits: np.ndarray, y: np.ndarray) -> float:
    return float(f1_score(y, np.asarray(logits).argmax(1), average="macro"))


def classification_metrics(logits: np.ndarray, y: np.ndarray) -> dict:
    return {"acc": accuracy(logits, y), "map": mean_average_precision(logits, y),
            "f1": macro_f1(logits, y)}
