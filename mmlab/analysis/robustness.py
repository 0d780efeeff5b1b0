"""Test-time Gaussian-noise robustness (ReconBoost App. D.2, Tables 8-10).

A trained model is evaluated on a split where a fixed `fraction` (paper: 50%) of the
samples of each named modality get zero-mean Gaussian noise of VARIANCE sigma^2 added to
their inputs (the tables' columns are sigma^2 = 0, 0.1, 0.3, 0.5, 1.0). The corruption is
mmlab.data.transforms.GaussianNoise, which takes a standard deviation, so
std = sqrt(variance). Which samples are hit, and the noise values, depend only on
(seed, modality, index in the split): every method sees exactly the same corrupted test
set, and a larger variance scales the same noise draws. Each modality picks its samples
independently (case 3, "both": about a quarter of the samples are hit in both).

What sigma^2 means depends on the input scale, which differs from the paper's CREMA-D
(whose preprocessing the paper does not state). In the embedded datasets:

* avmnist: "audio" MFCCs standardised per coefficient (unit variance over real frames;
  padded frames are 0), "image" in [0, 1] with most pixels 0 (the patch keeps 1/4 of
  the image), so sigma^2 = 0.1 on the image is already large relative to its signal;
* cgm: "gray" and "color" images in [0, 1];
* mfeat, watch: every feature / channel standardised (unit variance on the training pool);
* synthetic: per-feature variance 1 + snr^2 / dim (unit noise plus the prototype).

So on standardised modalities sigma^2 is a noise-to-signal variance ratio; on [0, 1]
images it is far harsher. Compare methods within one dataset, not numbers across them.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence

import torch

from mmlab.data.base import BatchLoader, MMData
from mmlab.data.transforms import GaussianNoise


def _resolve(model, method, device):
    """(model, method, device) from either a Trainer or a model plus its Method."""
    if hasattr(model, "method") and hasattr(model, "model"):        # a fitted Trainer
        return model.model, method or model.method, device or model.device
    if method is None:
        raise ValueError("pass the Method whose predict() fuses at test time "
                         "(noisy_accuracy(model, method, ...)) or a fitted Trainer as `model`")
    return model, method, device or "cpu"


def _check_modalities(data: MMData, modalities: Sequence[str]) -> list:
    modalities = list(modalities)
    unknown = [m for m in modalities if m not in data.x]
    if unknown or len(set(modalities)) != len(modalities):
        raise ValueError(f"modalities must be distinct names from {list(data.x)}; got {modalities}")
    return modalities


@torch.no_grad()
def _predict(model, method, loader) -> dict:
    """Fused and per-modality predicted classes (numpy [N]) over a loader."""
    model.eval()
    fused, per = [], {}
    for batch in loader:
        out = method.predict(model, batch)
        fused.append(out.logits.float().argmax(1).cpu())
        for m, z in out.per_modality.items():
            per.setdefault(m, []).append(z.float().argmax(1).cpu())
    return {"pred": torch.cat(fused).numpy(), "per_modality": {m: torch.cat(v).numpy() for m, v in per.items()}}


def noisy_accuracy(model, method, data: MMData, modalities: Sequence[str], fraction: float = 0.5,
                   variance: float = 0.1, seed: int = 0, device=None, batch_size: int = 512,
                   return_predictions: bool = False) -> dict:
    """Accuracy of a trained model on `data` with noise of variance `variance` added to
    `fraction` of the samples of each of `modalities`.

    model: the trained MultimodalNet (eval mode is set here) and method its Method
    (test-time fusion rules live in method.predict); or a fitted Trainer and method=None.
    An empty `modalities` list evaluates the clean data.
    Returns {"acc": fused accuracy, "per_modality": {m: acc}, "corrupted": {m: fraction of
    samples hit}}, plus "pred" [N] and "selected" {m: bool [N]} if return_predictions.
    """
    model, method, device = _resolve(model, method, device)
    modalities = _check_modalities(data, modalities)
    if variance < 0:
        raise ValueError(f"variance must be >= 0, got {variance}")
    noise = GaussianNoise(modalities, fraction, math.sqrt(variance), seed) if modalities else None
    p = _predict(model, method, BatchLoader(data, batch_size, transform=noise, device=device))
    y = data.y.numpy()
    idx = torch.arange(len(data))
    selected = {m: noise.selected(idx, j).numpy() for j, m in enumerate(modalities)}
    out = {"acc": float((p["pred"] == y).mean()),
           "per_modality": {m: float((z == y).mean()) for m, z in p["per_modality"].items()},
           "corrupted": {m: float(s.mean()) for m, s in selected.items()}}
    if return_predictions:
        out.update(pred=p["pred"], selected=selected)
    return out


def robustness_grid(model, method, data: MMData, cases: Dict[str, Sequence[str]],
                    variances: Sequence[float] = (0.0, 0.1, 0.3, 0.5, 1.0), fraction: float = 0.5,
                    seed: int = 0, device=None, batch_size: int = 512):
    """Tables 8-10 for one model: a DataFrame with columns case, variance, acc and
    acc_<modality> (per-modality heads), one row per (case, variance).

    cases: e.g. {"image": ["image"], "audio": ["audio"], "both": ["audio", "image"]}.
    Variance 0 is the clean accuracy (evaluated once and shared by every case).
    Add a "method" / "seed" column and concatenate frames to compare methods.
    """
    import pandas as pd
    model, method, device = _resolve(model, method, device)
    kw = dict(fraction=fraction, seed=seed, device=device, batch_size=batch_size)
    clean: Optional[dict] = None
    rows = []
    for case, mods in cases.items():
        _check_modalities(data, mods)
        for v in variances:
            if v == 0:
                clean = clean or noisy_accuracy(model, method, data, [], variance=0.0, **kw)
                r = clean
            else:
                r = noisy_accuracy(model, method, data, mods, variance=float(v), **kw)
            rows.append({"case": case, "variance": float(v), "acc": r["acc"],
                         **{f"acc_{m}": a for m, a in r["per_modality"].items()}})
    return pd.DataFrame(rows)


def noise_rows(method, model, splits, cases: Dict[str, Sequence[str]],
               variances: Sequence[float] = (0.0, 0.1, 0.3, 0.5, 1.0)) -> list:
    """robustness_grid of a trained model on its test split, as rows; a unimodal model is
    evaluated on the cases of its own modality only, and every row names the model's
    modalities ("audio+image")."""
    own = {k: v for k, v in cases.items() if set(v) <= set(model.modalities)}
    g = robustness_grid(model, method, splits.test, own, variances)
    return g.assign(modalities="+".join(model.modalities)).to_dict("records")
