"""`uschad`: USC-HAD (Zhang & Sawchuk 2012; 14 subjects, 12 daily activities, 5 trials each, one
6-axis IMU on the hip at 100 Hz), accelerometer vs gyroscope as in ERL-MR (its "USC": 12 classes,
38,312 samples), read from a copy you supply.

Nothing is downloaded. The root is `data_root=` (notebooks: `-p data_root /data`) or the
environment variable MMLAB_DATA, and holds (directly or in a USC-HAD/ folder under it) the
public release as unzipped:

    <root>/Subject<k>/a<activity>t<trial>.mat      k = 1..14, activity = 1..12, trial = 1..5

each a MATLAB file with `sensor_readings` [T, 6]: accelerometer x, y, z (g) then gyroscope x, y,
z (deg/s). The activity and subject are taken from the file and folder names (some of the
release's own metadata fields are misspelt), activity a1..a12 = ACTIVITIES in order.

Construction (ERL-MR states the modalities and class count only; the rest is ours, matching
`watch`): each recording is cut into windows of `window` samples (default 200 = 2 s) every
`stride` samples (default 100 = 50 % overlap), a window inheriting its recording's activity and
subject; modalities "acc" [window, 3] and "gyro" [window, 3], standardised per channel with
statistics of the training-pool windows (never test). Subject-disjoint split: `test_subjects`
(default 13, 14) are test, validation is a seeded set of whole other subjects (group_val_split),
so train, val and test share no subject; MMData.groups holds the subject. (ERL-MR's 38,312
samples come from a windowing it does not state; ours need not give that count.)

`python -m mmlab prepare uschad --root DIR` reads the .mat files once into cached windows
(mmlab.data.base.cached_prepare: atomic, a damaged file rebuilt; keyed on the files' names,
sizes and modification times and the window options).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from mmlab.data.base import (DataFormatError, DatasetInfo, MMData, Splits, cached_prepare, check_knob,
                             fit_standardizer, group_val_split, register_dataset)
from mmlab.data.sources import content_hash, user_root, windows

USER_SUPPLIED = True
WEAK = "gyro"                # the weaker IMU modality alone (chapters name it a priori)
ACTIVITIES = ("walking forward", "walking left", "walking right", "walking upstairs", "walking downstairs",
              "running forward", "jumping up", "sitting", "standing", "sleeping", "elevator up", "elevator down")
RATE = 100
LAYOUT = ("<root>/Subject<k>/a<activity>t<trial>.mat (k = 1..14, activity = 1..12, trial = 1..5), each a "
          "MATLAB file with 'sensor_readings' [T, 6]: accelerometer x, y, z then gyroscope x, y, z, 100 Hz")
FILE = re.compile(r"a(\d+)t(\d+)\.mat")


def load_mat(path: Path, key: str, what: str) -> np.ndarray:
    """Array `key` of a MATLAB file as float32; DataFormatError naming the file otherwise."""
    from scipy.io import loadmat
    try:
        m = loadmat(path)
    except Exception as e:
        raise DataFormatError(f"{path}: not a readable MATLAB file ({type(e).__name__}: {e}); "
                              f"expected {what}") from None
    if key not in m:
        raise DataFormatError(f"{path}: malformed data file, expected {what} (no {key!r} in it)")
    try:
        return np.asarray(m[key], dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise DataFormatError(f"{path}: {key!r} is not numeric ({e}); expected {what}") from None


def standardise(x: dict, fit: torch.Tensor) -> dict:
    """Each [N, T, C] modality standardised per channel with the statistics of rows `fit`."""
    out = {}
    for m, t in x.items():
        mean, std = fit_standardizer(t[fit], dims=(0, 1))
        out[m] = ((t - mean) / std).contiguous()
    return out


def find_root(data_root: Optional[str] = None) -> Path:
    given = user_root("uschad", data_root, LAYOUT)
    for cand in (given, given / "USC-HAD", given / "USC_HAD"):
        if any(p.is_dir() for p in cand.glob("Subject*")):
            return cand
    raise FileNotFoundError(f"no USC-HAD under {given}: expected {LAYOUT} (first missing: {given / 'Subject1'})")


def list_recordings(root: Path) -> List[Tuple[Path, int, int]]:
    """[(file, subject, activity index 0..11)], sorted; a misnamed file is an error naming it."""
    out = []
    for folder in sorted(p for p in root.glob("Subject*") if p.is_dir()):
        subject = folder.name[len("Subject"):]
        if not subject.isdigit():
            raise DataFormatError(f"{folder}: expected folders Subject<k> with a number k ({LAYOUT})")
        for path in sorted(folder.glob("*.mat")):
            hit = FILE.fullmatch(path.name)
            if not hit or not 1 <= int(hit.group(1)) <= len(ACTIVITIES):
                raise DataFormatError(f"{path}: expected a<activity>t<trial>.mat with activity 1..{len(ACTIVITIES)}")
            out.append((path, int(subject), int(hit.group(1)) - 1))
    if not out:
        raise FileNotFoundError(f"{root} holds no Subject<k>/a<activity>t<trial>.mat file; expected {LAYOUT}")
    return out


def read_recording(path: Path) -> np.ndarray:
    x = load_mat(path, "sensor_readings", "'sensor_readings' [T, 6] (acc x, y, z, gyro x, y, z)")
    if x.ndim != 2 or x.shape[1] != 6:
        raise DataFormatError(f"{path}: malformed data file, expected 'sensor_readings' [T, 6] (acc x, y, z, "
                              f"gyro x, y, z), got shape {x.shape}")
    return x


def _read_all(recs, window: int, stride: int, progress: bool) -> dict:
    from tqdm.auto import tqdm
    series = [read_recording(p) for p, _, _ in tqdm(recs, desc="prepare uschad", disable=not progress)]
    x, y, subject = (torch.from_numpy(a) for a in
                     windows(series, [a for _, _, a in recs], [s for _, s, _ in recs], window, stride))
    return {"acc": x[..., :3].contiguous(), "gyro": x[..., 3:].contiguous(), "y": y, "subject": subject}


def prepare(data_root: Optional[str] = None, window: int = 200, stride: int = 100, progress: bool = False) -> dict:
    """All windows {"acc", "gyro" [W, window, 3] (raw units), "y", "subject"}, built once and cached."""
    check_knob("uschad", "window", window, 1, integer=True)
    check_knob("uschad", "stride", stride, 1, integer=True)
    recs = list_recordings(find_root(data_root))
    opts = {"content": content_hash([p for p, _, _ in recs]), "window": int(window), "stride": int(stride)}
    return cached_prepare("uschad", opts, lambda: _read_all(recs, int(window), int(stride), progress))


@register_dataset("uschad")
def build(seed: int = 0, val_fraction: float = 0.1, *, data_root: Optional[str] = None, window: int = 200,
          stride: int = 100, test_subjects: tuple = (13, 14)) -> Splits:
    d = prepare(data_root, window, stride)
    test_subjects = sorted({int(s) for s in test_subjects})
    known = sorted(set(d["subject"].tolist()))
    if not test_subjects or not set(test_subjects) < set(known) or len(known) - len(test_subjects) < 2:
        raise ValueError(f"uschad: test_subjects {test_subjects} must be a non-empty subset of the subjects {known} "
                         f"leaving at least 2 for train and val")
    is_test = torch.from_numpy(np.isin(d["subject"].numpy(), test_subjects))
    x = standardise({"acc": d["acc"], "gyro": d["gyro"]}, ~is_test)
    full = MMData(x, d["y"], d["subject"])
    pool, test = full.subset(torch.nonzero(~is_test).flatten()), full.subset(torch.nonzero(is_test).flatten())
    train, val = group_val_split(pool, val_fraction, seed)
    info = DatasetInfo(
        name="uschad", modalities={"acc": (window, 3), "gyro": (window, 3)}, class_names=list(ACTIVITIES),
        encoders={"acc": ("conv1d", {"in_channels": 3}), "gyro": ("conv1d", {"in_channels": 3})},
        description="USC-HAD (user-supplied): accelerometer vs gyroscope windows, subject-disjoint splits.",
        options=dict(window=window, stride=stride, test_subjects=test_subjects))
    return Splits(train, val, test, info)
