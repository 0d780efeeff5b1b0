"""The modality gap (Liang et al., NeurIPS 2022, as MLA Sec. 3.3.3 / Fig. 3 uses it): the
distance between the centroids of two modalities' L2-normalised embeddings,

    gap(a, b) = || mean_i f_a(x_i)/|f_a(x_i)|  -  mean_i f_b(x_i)/|f_b(x_i)| ||_2,

and a 2-D view of both modalities' embeddings (one PCA of the normalised embeddings of both,
paired samples joined in the figure). Embeddings are each modality's encoder output (for MLA
the input of its shared head).
"""
from __future__ import annotations

from itertools import combinations
from typing import Dict

import numpy as np
import torch

from mmlab.analysis.probe import extract_features


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def modality_gap(feats: Dict[str, np.ndarray]) -> Dict[str, float]:
    """{"a|b": gap} for every pair of modalities (order of `feats`), from [N, D] embeddings."""
    c = {m: _unit(np.asarray(f, dtype=np.float64)).mean(0) for m, f in feats.items()}
    return {f"{a}|{b}": float(np.linalg.norm(c[a] - c[b])) for a, b in combinations(feats, 2)}


def gap_rows(method, model, splits, max_n: int = 400, seed: int = 0) -> dict:
    """The test set's modality gaps and a PCA view of the first two modalities' normalised
    embeddings ({"gaps": {...}, "pca": {m: [n, 2]}, "labels": [n]}) for mmlab.studies.per_model;
    `max_n` test samples (a seeded subset) are embedded."""
    from sklearn.decomposition import PCA
    n = len(splits.test)
    idx = np.sort(np.random.default_rng(seed).choice(n, min(max_n, n), replace=False))
    data = splits.test.subset(idx)
    feats = extract_features(model, data)
    a, b = list(feats)[:2]
    both = np.concatenate([_unit(feats[a]), _unit(feats[b])])
    xy = PCA(2, random_state=seed).fit_transform(both)
    return {"gaps": modality_gap(feats), "pca": {a: xy[:len(idx)], b: xy[len(idx):]},
            "labels": data.y.numpy()}


@torch.no_grad()
def epoch_gap(trainer) -> Dict[str, float]:
    """The modality gaps of the model being trained, on the validation split (a per-epoch
    tracker: TrainConfig.track = ("modality_gap",))."""
    return modality_gap(extract_features(trainer.model, trainer.splits.val, device=trainer.device))
