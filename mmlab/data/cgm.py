"""`cgm`: Colored-and-Gray MNIST (CG-MNIST), the imbalance benchmark of PMR / ERL-MR.

PMR (Fan et al., CVPR 2023) and ERL-MR pair a gray MNIST digit with a colored one,
using the biased Colored MNIST of "Learning Not to Learn" (Kim et al., CVPR 2019): in
train every class has its own mean colour, in test colours are random. The colored
modality therefore offers a shortcut (colour) that is perfect in train and useless in
test, so joint training leans on it and under-trains the gray branch.

Construction (MNIST from mmlab.data.mnist: 60k train, 10k test, returned in [0, 1]):

* "gray"  [1, 28, 28]: the digit image.
* "color" [3, 28, 28]: a digit image of the same class with its foreground multiplied by
  an RGB colour c (background stays black): color = image[None] * c[:, None, None].
* Train colour: c = PALETTE[label] + N(0, color_std^2), clipped to [0, 1]. A fraction
  `random_color_fraction` of training samples instead get c ~ U[0, 1]^3. Such samples
  can only be classified from the shape of the colored digit, so raising the fraction
  pushes the colored branch to learn shape and moves its test accuracy up from chance
  toward the ~60% PMR reports for it; 0.0 (default) is the pure shortcut.
* Test colour: c = PALETTE[k] + N(0, color_std^2) with k uniform and independent of the
  label, so colour carries no label information at test.
* Pairing (`pair_same_image`). PMR's loader indexes torchvision MNIST and the LNTL
  colored-MNIST file with the same index, and LNTL's file documents its `test_gray` as
  "a black and white version of the same image", i.e. the colored modality is the same
  digit image colored. That is the default (True). False pairs each gray image with a
  different image of the same class (a seeded cyclic shift within each class, so every
  image is used once as a partner), which removes the exact pixel redundancy.

Knobs: color_std (default 0.03; LNTL/PMR's file "jitter_var_0.020" is a *variance*,
i.e. std ~0.14), random_color_fraction, pair_same_image, n_train / n_test (stratified
seeded subsamples for fast profiles), data_seed (colours, pairing, subsampling: fixed
across training seeds, so test is identical for every `seed`; `seed` only picks val).
The cache holds uint8 images plus colours and partner indices (~55 MB for the full
set); the float colored images are composed at load time.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from mmlab.data.base import DatasetInfo, MMData, Splits, cached_prepare, check_knob, register_dataset, stratified_val_split
from mmlab.data.mnist import load_mnist

# CNN4 width of both encoders. A pass is compute-bound in the convolutions: width 32 took
# 86 ms per 64-pair step on one core here (23 s per quick run in the book), width 16 31 ms
# (8 s). Measured at width 16 (quick profile, 3 seeds, test %): gray alone 90.6, colour
# alone 24.1, concat 29.0, sum 32.4, FiLM 30.9, gated 28.5, late 67.1 (width 32: 93.8, 20.2,
# 24.7, 24.3, 31.7, 21.1, 57.3): the same picture, every joint fusion far below gray alone.
WIDTH = 16

# One mean colour per class (RGB in [0, 1]); pairwise distances >= 0.5.
PALETTE = np.array([
    [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 1.0],
    [0.0, 1.0, 1.0], [1.0, 0.5, 0.0], [0.5, 0.0, 1.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5],
], dtype=np.float64)


def stratified_subset(y: np.ndarray, n, seed: int) -> np.ndarray:
    """Sorted indices of a stratified, seeded subsample of size n (all if n is None)."""
    if n is None or n >= len(y):
        return np.arange(len(y))
    idx, _ = train_test_split(np.arange(len(y)), train_size=int(n), random_state=seed, stratify=y)
    return np.sort(idx)


def _partners(y: np.ndarray, same: bool, rng) -> np.ndarray:
    """Index of the image shown in the colored modality of each sample [N]."""
    if same:
        return np.arange(len(y))
    partner = np.arange(len(y))
    for c in np.unique(y):
        perm = rng.permutation(np.flatnonzero(y == c))
        partner[perm] = np.roll(perm, -1)          # each image partners the next one of its class
    return partner


def _colours(y: np.ndarray, biased: bool, std: float, random_fraction: float, rng) -> np.ndarray:
    """RGB colour per sample [N, 3]: class mean (train) or a random class's mean (test), plus noise."""
    mean_of = y if biased else rng.integers(0, len(PALETTE), size=len(y))
    c = PALETTE[mean_of] + rng.normal(0.0, std, size=(len(y), 3))
    if biased and random_fraction > 0:
        flip = rng.random(len(y)) < random_fraction
        c[flip] = rng.random((flip.sum(), 3))
    return np.clip(c, 0.0, 1.0).astype(np.float32)


def _prepare(opts: dict) -> dict:
    x_tr, y_tr, x_te, y_te = load_mnist()
    rng = np.random.default_rng(opts["data_seed"])
    out = {}
    for split, x, y, n, biased in (("train", x_tr, y_tr, opts["n_train"], True),
                                   ("test", x_te, y_te, opts["n_test"], False)):
        keep = stratified_subset(y, n, opts["data_seed"])
        x, y = x[keep], y[keep]
        out[f"{split}_gray"] = torch.from_numpy(x)                                  # uint8 [N, 28, 28]
        out[f"{split}_y"] = torch.from_numpy(y)                                     # int64 [N]
        out[f"{split}_partner"] = torch.from_numpy(_partners(y, opts["pair_same_image"], rng))
        out[f"{split}_colour"] = torch.from_numpy(_colours(
            y, biased, opts["color_std"], opts["random_color_fraction"], rng))      # float32 [N, 3]
    return out


def _compose(d: dict, split: str, rows: torch.Tensor) -> MMData:
    """Float modalities for the given sample rows of one split."""
    gray = d[f"{split}_gray"]
    g = gray[rows].float().div_(255).unsqueeze(1)                                   # [n, 1, 28, 28]
    p = gray[d[f"{split}_partner"][rows]].float().div_(255).unsqueeze(1)            # [n, 1, 28, 28]
    color = p * d[f"{split}_colour"][rows].view(-1, 3, 1, 1)                        # [n, 3, 28, 28]
    return MMData({"gray": g, "color": color}, d[f"{split}_y"][rows].clone())


@register_dataset("cgm")
def build(seed: int = 0, val_fraction: float = 0.1, *, color_std: float = 0.03,
          random_color_fraction: float = 0.0, pair_same_image: bool = True,
          n_train: int | None = None, n_test: int | None = None, data_seed: int = 0) -> Splits:
    check_knob("cgm", "color_std", color_std, 0)
    check_knob("cgm", "random_color_fraction", random_color_fraction, 0, 1)
    check_knob("cgm", "n_train", n_train, 10, 60000, integer=True, allow_none=True)
    check_knob("cgm", "n_test", n_test, 10, 10000, integer=True, allow_none=True)
    opts = dict(color_std=float(color_std), random_color_fraction=float(random_color_fraction),
                pair_same_image=bool(pair_same_image), n_train=n_train, n_test=n_test,
                data_seed=data_seed)
    d = cached_prepare("cgm", opts, lambda: _prepare(opts))
    # split row indices first, so the big float tensors are built once per split
    rows = MMData({"row": torch.arange(len(d["train_y"]))}, d["train_y"])
    tr, va = stratified_val_split(rows, val_fraction, seed)
    info = DatasetInfo(
        name="cgm",
        modalities={"gray": (1, 28, 28), "color": (3, 28, 28)},
        class_names=[str(c) for c in range(10)],
        encoders={"gray": ("cnn4", {"in_channels": 1, "width": WIDTH}),
                  "color": ("cnn4", {"in_channels": 3, "width": WIDTH})},
        description="Colored-and-Gray MNIST: colour = class shortcut in train, random in test.",
        options=opts,
    )
    return Splits(_compose(d, "train", tr.x["row"]), _compose(d, "train", va.x["row"]),
                  _compose(d, "test", torch.arange(len(d["test_y"]))), info)
