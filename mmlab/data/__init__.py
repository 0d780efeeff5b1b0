"""Datasets as in-memory tensors: `load_dataset(name, seed, **options) -> Splits`.

Importing this package registers every dataset (cgm, avmnist, watch, mfeat, synthetic).
"""
from mmlab.data import transforms
from mmlab.data.base import (DATASETS, BatchLoader, DataFormatError, DatasetInfo, MissingPackageError,
                             MMData, Splits, load_dataset, variants)
from mmlab.data import avmnist, cgm, mfeat, synthetic, watch  # noqa: F401  (registration)

__all__ = ["load_dataset", "DATASETS", "Splits", "MMData", "DatasetInfo", "BatchLoader",
           "DataFormatError", "MissingPackageError", "transforms", "variants"]
