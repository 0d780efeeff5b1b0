"""t-SNE maps of encoder features (ReconBoost Fig. 4 / Fig. 12) and the numbers behind them.

The paper projects "the outputs of the backbone" of each modality to 2-D with t-SNE and
reads cluster quality off the pictures. A t-SNE picture depends on perplexity, seed and
subsample, so `cluster_scores` gives two numbers computed on the features themselves
(not on the 2-D map): the silhouette of the class labels and the leave-one-out k-NN
accuracy. Report them beside every t-SNE grid.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np
from sklearn.manifold import TSNE
from sklearn.metrics import silhouette_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler


def subsample(n: int, max_points: Optional[int], seed: int = 0, labels=None) -> np.ndarray:
    """Sorted indices of at most max_points of n rows: stratified by `labels` when given
    (and every class has >= 2 rows), otherwise a seeded uniform draw."""
    if max_points is None or n <= max_points:
        return np.arange(n)
    idx = np.arange(n)
    if labels is not None and np.unique(labels, return_counts=True)[1].min() >= 2:
        try:
            chosen, _ = train_test_split(idx, train_size=max_points, random_state=seed,
                                         stratify=np.asarray(labels))
            return np.sort(chosen)
        except ValueError:        # max_points smaller than the number of classes
            pass
    return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def _standardise(features: np.ndarray) -> np.ndarray:
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"features must be 2-D [N, D], got shape {x.shape}")
    return StandardScaler().fit_transform(x)


def tsne_embed(features: np.ndarray, seed: int = 0, max_points: int = 1000, perplexity: float = 30.0,
               labels=None) -> Tuple[np.ndarray, np.ndarray]:
    """2-D t-SNE of standardised features: (xy [n, 2], idx [n]) with features[idx] the
    rows embedded (pass labels[idx] to colour them).

    Subsample: stratified by `labels` if given, else seeded uniform, to max_points rows.
    sklearn TSNE with init="pca", learning_rate="auto", random_state=seed; perplexity is
    capped at (n - 1) / 3 so tiny inputs still run. Deterministic for a seed.
    """
    n = len(features)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {n}")
    idx = subsample(n, max_points, seed, labels)
    x = _standardise(np.asarray(features)[idx])
    perp = min(float(perplexity), (len(idx) - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto", random_state=seed)
    return tsne.fit_transform(x).astype(np.float32), idx


def knn_loo_accuracy(x: np.ndarray, labels, k: int = 5, metric: str = "cosine") -> float:
    """Leave-one-out k-NN accuracy: each point is classified by the majority label of its
    k nearest OTHER points (ties -> the smallest label)."""
    y = np.asarray(labels)
    classes, yi = np.unique(y, return_inverse=True)
    nn = NearestNeighbors(n_neighbors=k, metric=metric).fit(x)
    nbr = nn.kneighbors(return_distance=False)        # [N, k], the query point itself excluded
    votes = (yi[nbr][:, :, None] == np.arange(len(classes))).sum(1)   # [N, C]
    return float((votes.argmax(1) == yi).mean())


def cluster_scores(features: np.ndarray, labels, k: int = 5, metric: str = "cosine",
                   max_points: Optional[int] = 5000, seed: int = 0) -> Dict[str, float]:
    """{"silhouette", "knn_acc"} of the class labels on standardised features.

    silhouette: sklearn silhouette_score with `metric` (cosine), in [-1, 1], higher = the
    classes form tighter, better separated clusters. knn_acc: leave-one-out k-NN accuracy
    (k=5, same metric); chance is the majority-class rate. Both on at most max_points rows
    (stratified seeded subsample) to bound the O(N^2) cost.
    """
    y = np.asarray(labels)
    if len(y) != len(features):
        raise ValueError(f"{len(features)} feature rows but {len(y)} labels")
    if not 2 <= len(np.unique(y)) < len(y):
        raise ValueError("cluster_scores needs at least 2 classes and fewer classes than points")
    idx = subsample(len(y), max_points, seed, y)
    x, y = _standardise(np.asarray(features)[idx]), y[idx]
    return {"silhouette": float(silhouette_score(x, y, metric=metric)),
            "knn_acc": knn_loo_accuracy(x, y, k=k, metric=metric)}


def tsne_rows(method, model, splits, max_points: int = 600, seed: int = 0) -> list:
    """Per modality of a trained model: the t-SNE map of its test features (xy, labels y of
    the embedded rows) and the cluster scores of the features themselves."""
    from mmlab.analysis.probe import extract_features
    y = splits.test.y.numpy()
    rows = []
    for m, f in extract_features(model, splits.test).items():
        xy, idx = tsne_embed(f, seed=seed, max_points=max_points, labels=y)
        rows.append({"modality": m, "xy": xy, "y": y[idx], **cluster_scores(f, y)})
    return rows


def cluster_rows(method, model, splits) -> list:
    """Per modality of a trained model: silhouette and 5-NN accuracy of its test features."""
    from mmlab.analysis.probe import extract_features
    y = splits.test.y.numpy()
    return [{"modality": m, **cluster_scores(f, y)} for m, f in extract_features(model, splits.test).items()]
