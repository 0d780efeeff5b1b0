"""Per-batch transforms for BatchLoader: missing modalities and Gaussian corruption.

A transform is called as `transform(batch, idx, epoch) -> batch`, where idx (Tensor[B])
holds the dataset indices of the batch rows. Every random decision here is a pure
function of (seed, dataset index, modality) — coin flips via a counter-based hash
(splitmix64), noise values via a torch.Generator seeded with a hash of (seed, stream, index) —
never of the batch composition or the epoch. So:

* a sample's mask / noise is the same in every epoch and under any shuffling;
* evaluating val/test twice gives identical corrupted inputs (fixed protocol);
* train, val and test see the same rate (the MLA protocol: eta applies everywhere).

Indices are positions inside one split, so sample i of train and sample i of test get
the same random draw; pass a different `seed` per split if that matters to you.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np
import torch

from mmlab.registry import UnknownNameError

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a well-mixed uint64 for each uint64 key."""
    with np.errstate(over="ignore"):
        z = (z + np.uint64(0x9E3779B97F4A7C15)) & _M64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return z ^ (z >> np.uint64(31))


def hash64(seed: int, stream: int, keys) -> np.ndarray:
    """A well-mixed uint64 per integer key, fixed by (seed, stream, key)."""
    k = np.asarray(keys, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        base = _splitmix64(np.uint64(seed % 2**64) * np.uint64(1_000_003) + np.uint64(stream))
        return _splitmix64(k ^ base)


def hash_uniform(seed: int, stream: int, keys) -> torch.Tensor:
    """Uniform(0, 1) floats (float64, never exactly 0), one per key."""
    h = hash64(seed, stream, keys)
    return torch.from_numpy(((h >> np.uint64(11)).astype(np.float64) + 0.5) / float(2**53))


def sample_normal(seed: int, stream: int, indices, shape) -> torch.Tensor:
    """Standard normals float32 [b, *shape]; row r is fixed by (seed, stream, indices[r])."""
    seeds = (hash64(seed, stream, indices) >> np.uint64(1)).tolist()   # 63-bit generator seeds
    g = torch.Generator()
    return torch.stack([torch.randn(shape, generator=g.manual_seed(s)) for s in seeds])


def _check(modalities: Sequence[str], rate: float, what: str) -> List[str]:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{what} must be in [0, 1], got {rate}")
    modalities = list(modalities)
    if not modalities or len(set(modalities)) != len(modalities):
        raise ValueError(f"modalities must be a non-empty list of distinct names, got {modalities}")
    return modalities


def _require(batch: dict, modalities: Sequence[str]) -> None:
    missing = [m for m in modalities if m not in batch]
    if missing:
        present = [k for k in batch if k not in ("label", "mask", "index")]
        raise UnknownNameError(f"modalities {missing} are not in the batch; "
                               f"the batch has modalities {present}")


class MissingModality:
    """Each modality of each sample is missing with probability eta.

    Adds batch["mask"]: Bool[B, M] (True = present, columns in `modalities` order) and
    zeroes the inputs of missing modalities. The draws depend only on (seed, dataset
    index), so the pattern is fixed per sample across epochs and splits are comparable.

    At least one modality stays present: when every modality of a sample was drawn
    missing (probability eta**M), one of them, chosen uniformly by another hashed draw,
    is restored. The realised missing rate per modality is therefore
    `eta - eta**M / M` (see `expected_missing_rate`), e.g. 0.375 for eta=0.5, M=2.
    """

    def __init__(self, modalities: Sequence[str], eta: float, seed: int = 0):
        self.modalities = _check(modalities, eta, "eta")
        self.eta, self.seed = float(eta), seed

    @property
    def expected_missing_rate(self) -> float:
        m = len(self.modalities)
        return self.eta - self.eta ** m / m

    def mask(self, idx: torch.Tensor) -> torch.Tensor:
        """Bool[B, M] presence mask for dataset indices idx [B]."""
        u = torch.stack([hash_uniform(self.seed, j, idx) for j in range(len(self.modalities))], 1)
        present = u >= self.eta                                              # [B, M]
        # Rescue samples with nothing left: restore one modality picked by a hashed draw.
        pick = (hash_uniform(self.seed, 10_007, idx) * len(self.modalities)).long()  # [B]
        none = ~present.any(1)
        present[none, pick[none]] = True
        return present

    def __call__(self, batch: dict, idx: torch.Tensor, epoch: int = 0) -> dict:
        _require(batch, self.modalities)
        present = self.mask(idx)
        out = dict(batch)
        for j, m in enumerate(self.modalities):
            keep = present[:, j].view(-1, *([1] * (batch[m].dim() - 1)))  # [B, 1, ...]
            out[m] = batch[m] * keep.to(batch[m].dtype)
        out["mask"] = present
        return out


class DropModality:
    """One modality absent for a fixed `fraction` of the samples (chosen by a hash of (seed,
    modality, dataset index)): its inputs zeroed and its column of batch["mask"] False, the other
    modalities untouched (MLA Fig. 2's modality isolation: a growing share of one modality's
    training data missing). Composes with MissingModality (the masks are and-ed)."""

    def __init__(self, modalities: Sequence[str], modality: str, fraction: float, seed: int = 0):
        self.modalities = _check(modalities, fraction, "fraction")
        if modality not in self.modalities:
            raise ValueError(f"modality {modality!r} is not one of {self.modalities}")
        self.j, self.fraction, self.seed = self.modalities.index(modality), float(fraction), seed

    def dropped(self, idx: torch.Tensor) -> torch.Tensor:
        """Bool[B]: the samples without the modality."""
        return hash_uniform(self.seed, 300 + self.j, idx) < self.fraction

    def __call__(self, batch: dict, idx: torch.Tensor, epoch: int = 0) -> dict:
        _require(batch, self.modalities)
        out = dict(batch)
        mask = batch.get("mask")
        mask = torch.ones(len(idx), len(self.modalities), dtype=torch.bool) if mask is None else mask.clone()
        gone = self.dropped(idx).to(mask.device)
        mask[:, self.j] &= ~gone
        m = self.modalities[self.j]
        keep = (~gone).view(-1, *([1] * (batch[m].dim() - 1)))
        out[m], out["mask"] = batch[m] * keep.to(batch[m].dtype), mask
        return out


class GaussianNoise:
    """Add N(0, std^2) noise to a fixed `fraction` of samples of the chosen modalities.

    For robustness tables (ReconBoost Tables 8-10). Which samples are corrupted, and the
    noise values themselves, are seeded by (seed, modality, dataset index), so
    test-time corruption is identical across runs and batch sizes. Each modality selects
    its own samples independently.
    """

    def __init__(self, modalities: Sequence[str], fraction: float, std: float, seed: int = 0):
        self.modalities = _check(modalities, fraction, "fraction")
        if std < 0:
            raise ValueError(f"std must be >= 0, got {std}")
        self.fraction, self.std, self.seed = float(fraction), float(std), seed

    def selected(self, idx: torch.Tensor, j: int) -> torch.Tensor:
        """Bool[B]: which samples get noise in modality number j."""
        return hash_uniform(self.seed, 100 + j, idx) < self.fraction

    def __call__(self, batch: dict, idx: torch.Tensor, epoch: int = 0) -> dict:
        _require(batch, self.modalities)
        out = dict(batch)
        for j, m in enumerate(self.modalities):
            sel = self.selected(idx, j)                                      # [B]
            if not sel.any():
                continue
            x = batch[m].clone()
            noise = sample_normal(self.seed, 200 + j, idx[sel], x.shape[1:])  # [b, ...]
            x[sel] = x[sel] + self.std * noise.to(x.dtype)
            out[m] = x
        return out


class Compose:
    """Apply transforms in order (BatchLoader takes a single callable)."""

    def __init__(self, *transforms):
        self.transforms = transforms

    def __call__(self, batch: dict, idx: torch.Tensor, epoch: int = 0) -> dict:
        for t in self.transforms:
            batch = t(batch, idx, epoch)
        return batch
