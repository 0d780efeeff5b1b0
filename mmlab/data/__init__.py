"""Datasets as in-memory tensors: `load_dataset(name, seed, **options) -> Splits`.

Importing this package registers every dataset (cgm, avmnist, watch, mfeat, synthetic): each
module of the package is imported here, so a new dataset file registers itself with
`@register_dataset("name")` and needs no edit of this file (nor changes any other run's key).
"""
import importlib
import pkgutil

from mmlab.data import transforms
from mmlab.data.base import (DATASETS, BatchLoader, DataFormatError, DatasetInfo, MissingPackageError,
                             MMData, Splits, load_dataset, variants)

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _mod.startswith("_"):
        importlib.import_module(f"{__name__}.{_mod}")

__all__ = ["load_dataset", "DATASETS", "Splits", "MMData", "DatasetInfo", "BatchLoader",
           "DataFormatError", "MissingPackageError", "transforms", "variants"]
