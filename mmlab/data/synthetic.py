"""`synthetic`: Gaussian class prototypes with a per-modality signal-to-noise knob.

Construction. Labels are balanced over `n_classes`. Modality m ("m0", "m1", ...) has
`dims[m]` features; each class c gets a prototype p_c^m drawn from N(0, I) and rescaled
to unit norm, and a sample of class c is

    x^m = snr[m] * p_c^m + N(0, I).

Two prototypes of a unit-norm pair sit about sqrt(2) * snr[m] noise-stds apart along the
line joining them, so snr[m] directly sets how easy modality m is: with the default
snr=(3.0, 0.5), "m0" is almost linearly separable and "m1" is barely above chance —
a controllable imbalance. The modalities are conditionally independent given the label.

Knobs: n_samples, n_classes, dims, snr (one entry per modality), test_fraction.
Everything is drawn with a fixed `data_seed` (default 0), so the test split does not
move with the training seed; `seed` only picks the validation split. No caching: the
whole build takes milliseconds (this set backs the unit tests).
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from mmlab.data.base import DatasetInfo, MMData, Splits, register_dataset, stratified_val_split


def _make(n_samples: int, n_classes: int, dims, snr, data_seed: int):
    rng = np.random.default_rng(data_seed)
    y = rng.permutation(np.arange(n_samples) % n_classes)            # balanced labels [N]
    x = {}
    for m, (d, s) in enumerate(zip(dims, snr)):
        protos = rng.standard_normal((n_classes, d))
        protos /= np.linalg.norm(protos, axis=1, keepdims=True)       # unit-norm prototypes [K, d]
        feats = s * protos[y] + rng.standard_normal((n_samples, d))  # [N, d]
        x[f"m{m}"] = torch.tensor(feats, dtype=torch.float32)
    return x, torch.tensor(y, dtype=torch.int64)


@register_dataset("synthetic")
def build(seed: int = 0, val_fraction: float = 0.1, *, n_samples: int = 2000, n_classes: int = 4,
          dims: tuple = (16, 16), snr: tuple = (3.0, 0.5), test_fraction: float = 0.2,
          data_seed: int = 0) -> Splits:
    dims, snr = tuple(int(d) for d in dims), tuple(float(s) for s in snr)
    if len(dims) != len(snr) or not dims:
        raise ValueError(f"dims and snr need one entry per modality, got dims={dims}, snr={snr}")
    if n_classes < 2 or n_samples < 10 * n_classes:
        raise ValueError(f"need n_classes >= 2 and n_samples >= 10 * n_classes, "
                         f"got n_classes={n_classes}, n_samples={n_samples}")
    x, y = _make(n_samples, n_classes, dims, snr, data_seed)
    full = MMData(x, y)
    tr, te = train_test_split(np.arange(n_samples), test_size=test_fraction,
                              random_state=data_seed, stratify=y.numpy())
    train, val = stratified_val_split(full.subset(np.sort(tr)), val_fraction, seed)
    info = DatasetInfo(
        name="synthetic",
        modalities={m: (d,) for m, d in zip(x, dims)},
        class_names=[str(c) for c in range(n_classes)],
        encoders={m: ("mlp", {"in_dim": d}) for m, d in zip(x, dims)},
        description="Gaussian class prototypes; modality m has signal-to-noise snr[m].",
        options=dict(n_samples=n_samples, n_classes=n_classes, dims=dims, snr=snr,
                     test_fraction=test_fraction, data_seed=data_seed),
    )
    return Splits(train, val, full.subset(np.sort(te)), info)
