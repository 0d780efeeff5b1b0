"""Linear (and FC+ReLU+FC) probes of frozen encoders (ReconBoost Table 5 / Table 15).

Features of each modality's encoder are extracted in eval mode for train/val/test; a
scikit-learn classifier is fit on train features, its regularisation chosen on val, and
its test accuracy reported. The same probe on a randomly initialised encoder of the same
architecture is the baseline to read it against (random features are strong here).
"""
from __future__ import annotations

from typing import Dict, Sequence

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mmlab.data.base import BatchLoader, MMData


@torch.no_grad()
def extract_features(model, data: MMData, modalities=None, batch_size: int = 512,
                     device="cpu") -> Dict[str, np.ndarray]:
    """Encoder features per modality, {m: [N, D_m]} (no missing-modality mask)."""
    model.eval()
    feats: Dict[str, list] = {}
    for batch in BatchLoader(data, batch_size, device=device):
        for m, f in model.encode(batch, modalities).items():
            feats.setdefault(m, []).append(f.float().cpu())
    return {m: torch.cat(v).numpy() for m, v in feats.items()}


def _subsample(n: int, max_n: int | None, seed: int) -> np.ndarray:
    if max_n is None or n <= max_n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, max_n, replace=False))


def fit_probe(xtr, ytr, xva, yva, kind: str = "linear", Cs: Sequence[float] = (0.01, 0.1, 1.0),
              seed: int = 0):
    """Fit a probe on train features, pick its regularisation on val; returns the model."""
    best, best_acc = None, -1.0
    for C in Cs:
        if kind == "linear":
            clf = LogisticRegression(C=C, max_iter=500)
        elif kind in ("mlp", "mlp2"):   # FC+ReLU+FC / FC+ReLU+FC+ReLU+FC (Table 15); alpha ~ 1/C
            # on >= 1000 training features, early stopping on 10% of them bounds the cost;
            # smaller sets are cheap and would lose too much to a 10% split. Without early
            # stopping Adam needs 120-580 epochs to reach sklearn's tolerance on ~250 features
            # (measured on avmnist): max_iter 1000 lets it converge instead of warning
            clf = MLPClassifier(hidden_layer_sizes=(256,) if kind == "mlp" else (256, 256),
                                alpha=1.0 / (C * 100), max_iter=1000, early_stopping=len(xtr) >= 1000,
                                n_iter_no_change=5, random_state=seed)
        else:
            raise ValueError(f"unknown probe kind {kind!r}; use 'linear', 'mlp' (FC+ReLU+FC) or 'mlp2' (FC+ReLU+FC+ReLU+FC)")
        pipe = make_pipeline(StandardScaler(), clf).fit(xtr, ytr)
        acc = pipe.score(xva, yva)
        if acc > best_acc:
            best, best_acc = pipe, acc
    return best


def probe_encoders(model, splits, modalities=None, kind: str = "linear", max_train: int | None = 10000,
                   seed: int = 0, device="cpu") -> Dict[str, float]:
    """Test accuracy of a probe on each frozen encoder of `model`, {modality: acc}.

    max_train caps the probe's training set (seeded subsample) to bound its cost on
    large sets (CGM has 54k training images); val and test are used whole.
    """
    tr = splits.train.subset(_subsample(len(splits.train), max_train, seed))
    f = {s: extract_features(model, d, modalities, device=device)
         for s, d in (("train", tr), ("val", splits.val), ("test", splits.test))}
    ys = {"train": tr.y.numpy(), "val": splits.val.y.numpy(), "test": splits.test.y.numpy()}
    out = {}
    for m in f["train"]:
        clf = fit_probe(f["train"][m], ys["train"], f["val"][m], ys["val"], kind=kind, seed=seed)
        out[m] = float(clf.score(f["test"][m], ys["test"]))
    return out


PROBE_KINDS = (("linear", "FC"), ("mlp", "FC+Relu+FC"), ("mlp2", "FC+Relu+FC+Relu+FC"))   # Table 15


def probe_rows(method, model, splits, kinds=PROBE_KINDS, max_train: int | None = 10000, seed: int = 0) -> list:
    """One row {modality, probe, acc} per modality and probe kind for a trained model
    (`method` unused: the signature of mmlab.studies.per_model's callbacks)."""
    return [{"modality": m, "probe": name, "acc": acc} for kind, name in kinds
            for m, acc in probe_encoders(model, splits, kind=kind, max_train=max_train, seed=seed).items()]
