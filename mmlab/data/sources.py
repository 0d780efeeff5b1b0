"""Helpers of the datasets read from files: the root of a copy you supply, what a prepared cache
is made of, and sliding windows over recordings (cremad, ave, kinetics_sounds, features, uschad,
utdmhad; windows also serve the embedded `watch`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from mmlab.utils import stable_hash


def user_root(dataset: str, data_root: Optional[str], layout_text: str) -> Path:
    """data_root or $MMLAB_DATA; a FileNotFoundError naming the layout and MMLAB_DATA if neither."""
    given = data_root or os.environ.get("MMLAB_DATA")
    if not given:
        raise FileNotFoundError(f"{dataset} reads a copy you supply: pass data_root=DIR (notebooks: -p data_root "
                                f"DIR) or set MMLAB_DATA=DIR, DIR holding {layout_text}")
    return Path(given)


def content_hash(files: Sequence[Path]) -> str:
    """What a prepared cache is made of: the files' names, sizes and modification times."""
    return stable_hash([(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files])


def windows(series, labels, groups, window: int, stride: int):
    """Every window of every [T, C] series: x [W, window, C], labels [W], groups [W] (numpy, int64)."""
    cut, lab, grp = [], [], []
    for x, c, g in zip(series, labels, groups):
        starts = range(0, len(x) - window + 1, stride)
        cut += [x[t:t + window] for t in starts]
        lab += [c] * len(starts)
        grp += [g] * len(starts)
    if not cut:
        raise ValueError(f"window={window} is longer than every recording; no windows")
    return np.stack(cut), np.array(lab, dtype=np.int64), np.array(grp, dtype=np.int64)
