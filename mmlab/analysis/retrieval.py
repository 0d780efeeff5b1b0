"""Label-based retrieval mAP with cosine similarity (ReconBoost App. D.1, Table 7).

Protocol (the paper gives only "Cosine similarity served as the metric" and "for holistic
retrieval, we combine all latent features"; the rest is our choice):

* queries = the test set, gallery = the training set (`gallery="train"`, default); or
  leave-one-out within the test set (`gallery="test"`: each test sample queries every
  other test sample, itself excluded).
* A gallery item is relevant to a query when it has the same class label.
* The gallery is ranked by cosine similarity to the query; AP of a query is the mean, over
  its relevant items, of precision at that item's rank; mAP is the mean over queries.
  Queries without any relevant gallery item are skipped (there are none when every class
  appears in the gallery).
* Ties in similarity are broken by gallery order (stable sort). scikit-learn's
  average_precision_score instead groups tied scores; with continuous features ties do
  not occur, so the two agree (tests/test_analysis_rb.py checks it).
* "overall" (holistic) retrieval uses the concatenation of every modality's
  L2-normalised features. Each block then has norm 1, so the cosine of two concatenations
  is the MEAN of the per-modality cosines: every modality weighs the same whatever its
  feature dimension or scale. A weak modality therefore pulls "overall" below the strong
  modality's own mAP. `combine="raw"` concatenates the features as they are (modalities
  with larger feature norms dominate), the other reading of "combine"; report which.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np

_BUDGET = 1 << 22      # entries of one [chunk, Ng] block (~32 MB per float64 array; peak ~5 arrays)


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows scaled to unit L2 norm (all-zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), eps)


def _check_pair(x: np.ndarray, y: np.ndarray, what: str) -> None:
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"{what} must be a 2-D array [N, D] with one label per row; "
                         f"got shape {x.shape} and {len(y)} labels")


def _chunk_ap(sim: np.ndarray, qy: np.ndarray, gy: np.ndarray, drop_last: bool) -> np.ndarray:
    """AP per query row of sim [c, Ng]; NaN for queries with no relevant item."""
    order = np.argsort(-sim, axis=1, kind="stable")             # [c, Ng] best first
    if drop_last:                                               # the query itself, ranked last
        order = order[:, :-1]
    rel = gy[order] == qy[:, None]                              # [c, K] bool
    hits = np.cumsum(rel, axis=1, dtype=np.float64)             # relevant items up to each rank
    prec = hits / np.arange(1, rel.shape[1] + 1)                # precision@k
    n_rel = rel.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_rel > 0, (prec * rel).sum(1) / n_rel, np.nan)


def retrieval_map(queries: np.ndarray, query_labels, gallery: np.ndarray, gallery_labels,
                  exclude_self: bool = False, chunk_size: Optional[int] = None) -> float:
    """Mean average precision of ranking `gallery` [Ng, D] by cosine similarity to each
    of `queries` [Nq, D]; relevant = same label.

    exclude_self: the gallery is the query set itself (same rows, same order) and query i
    must not retrieve gallery item i (leave-one-out).
    chunk_size: queries per block (default: as many as fit ~4M similarity entries).
    """
    q, g = l2_normalise(queries), l2_normalise(gallery)
    qy, gy = np.asarray(query_labels), np.asarray(gallery_labels)
    _check_pair(q, qy, "queries"), _check_pair(g, gy, "gallery")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} features but the gallery has {g.shape[1]}")
    if exclude_self and len(q) != len(g):
        raise ValueError(f"exclude_self=True needs the gallery to be the query set itself; got "
                         f"{len(q)} queries and {len(g)} gallery items")
    chunk = chunk_size or max(1, _BUDGET // max(len(g), 1))
    aps = []
    for s in range(0, len(q), chunk):
        sim = q[s:s + chunk] @ g.T                                  # [c, Ng] cosine
        if exclude_self:
            rows = np.arange(len(sim))
            sim[rows, s + rows] = -np.inf                           # self sorts last, then dropped
        aps.append(_chunk_ap(sim, qy[s:s + chunk], gy, drop_last=exclude_self))
    aps = np.concatenate(aps)
    if np.isnan(aps).all():
        raise ValueError("no query has a relevant (same-label) gallery item")
    return float(np.nanmean(aps))


def concat_features(features: Dict[str, np.ndarray], modalities=None, combine: str = "l2") -> np.ndarray:
    """[N, sum D_m]: every modality's features side by side, each L2-normalised first
    (combine="l2") or as they are (combine="raw")."""
    if combine not in ("l2", "raw"):
        raise ValueError(f"unknown combine {combine!r}; use 'l2' (equal weight per modality) or 'raw'")
    norm = l2_normalise if combine == "l2" else (lambda x: np.asarray(x, dtype=np.float32))
    return np.concatenate([norm(features[m]) for m in (modalities or features)], axis=1)


def retrieval_table(test_features: Dict[str, np.ndarray], test_labels,
                    train_features: Optional[Dict[str, np.ndarray]] = None, train_labels=None,
                    gallery: str = "train", combine: str = "l2") -> Dict[str, float]:
    """{"overall": mAP, modality: mAP} as in ReconBoost Table 7.

    Per modality: that modality's features. "overall": the concatenation of every
    modality's L2-normalised features (the paper "combine[s] all latent features");
    combine="raw" concatenates unnormalised features instead.
    gallery="train": test queries against the training set (needs train_features/labels);
    gallery="test": leave-one-out within the test set.
    """
    mods = list(test_features)
    if gallery == "train":
        if train_features is None or train_labels is None:
            raise ValueError("gallery='train' needs train_features and train_labels "
                             "(or pass gallery='test' for leave-one-out within test)")
        missing = [m for m in mods if m not in train_features]
        if missing:
            raise ValueError(f"train_features lack modalities {missing}; expected {mods}")
        gal, gal_y, loo = train_features, train_labels, False
    elif gallery == "test":
        gal, gal_y, loo = test_features, test_labels, True
    else:
        raise ValueError(f"unknown gallery {gallery!r}; use 'train' or 'test'")
    out = {"overall": retrieval_map(concat_features(test_features, mods, combine), test_labels,
                                    concat_features(gal, mods, combine), gal_y, exclude_self=loo)}
    for m in mods:
        out[m] = retrieval_map(test_features[m], test_labels, gal[m], gal_y, exclude_self=loo)
    return out


def model_retrieval(model, splits, gallery: str = "train", modalities=None, combine: str = "l2",
                    device="cpu") -> Dict[str, float]:
    """retrieval_table on the encoder features of a trained model (eval mode)."""
    from mmlab.analysis.probe import extract_features
    test = extract_features(model, splits.test, modalities, device=device)
    train = extract_features(model, splits.train, modalities, device=device) if gallery == "train" else None
    return retrieval_table(test, splits.test.y.numpy(), train, splits.train.y.numpy(), gallery=gallery,
                           combine=combine)


def retrieval_rows(method, model, splits, gallery: str = "train", combine: str = "l2") -> dict:
    """model_retrieval as a row {overall, <modality>: mAP} (mmlab.studies.per_model's signature;
    `method` unused)."""
    return model_retrieval(model, splits, gallery=gallery, combine=combine)
