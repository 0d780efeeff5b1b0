"""`utdmhad`: UTD-MHAD (Chen, Jafari & Kehtarnavaz 2015; 27 actions by 8 subjects, 4 trials each,
861 sequences), wearable inertial sensor (right wrist, 50 Hz) vs Kinect skeleton (20 joints,
30 Hz), read from a copy you supply. ERL-MR's "MHAD" pairs accelerometer and skeleton.

Caveat: ERL-MR's Table 1 gives MHAD 11 classes and 3,956 samples, which is not UTD-MHAD (27
actions, 861 sequences); Berkeley MHAD has 11 actions. This loader is for UTD-MHAD, the set with
a public accelerometer + skeleton release in this layout; its numbers are not ERL-MR's.

Nothing is downloaded. The root is `data_root=` or the environment variable MMLAB_DATA, and
holds (directly or in a UTD-MHAD/ folder under it) the public release's two unzipped folders:

    <root>/Inertial/a<k>_s<j>_t<i>_inertial.mat   'd_iner' [T, 6]: acc x, y, z (g), gyro x, y, z (deg/s)
    <root>/Skeleton/a<k>_s<j>_t<i>_skeleton.mat   'd_skel' [20, 3, T]: 20 joints x (x, y, z)

k = action 1..27 (ACTIONS in order), j = subject 1..8, i = trial 1..4; every inertial file needs
its skeleton file and the other way round.

Construction (ours; ERL-MR states only the modalities): one sample per sequence. Each sequence
is resampled by linear interpolation over its whole duration to a fixed length, the inertial
stream to `inertial_length` steps (default 128, about 2.5 s of 50 Hz data) and the skeleton to
`skeleton_length` (default 64, about 2 s at 30 Hz); the skeleton is centred on its mean joint
position over the sequence and flattened to [T, 60]. Modalities (`modalities`, default
("acc", "skeleton") as ERL-MR; "gyro" also available): "acc" / "gyro" [inertial_length, 3],
"skeleton" [skeleton_length, 60], standardised per channel with training-pool statistics. Split:
the dataset authors' cross-subject protocol, subjects 1, 3, 5, 7 train and `test_subjects`
(default 2, 4, 6, 8) test; validation is a stratified slice of the training subjects' sequences
(with 4 training subjects a whole-subject val would drop a quarter of them). MMData.groups
holds the subject.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from mmlab.data.base import (DataFormatError, DatasetInfo, MMData, Splits, cached_prepare, check_knob,
                             register_dataset, stratified_val_split)
from mmlab.data.sources import content_hash, user_root
from mmlab.data.uschad import load_mat, standardise

USER_SUPPLIED = True
ACTIONS = ("right arm swipe to the left", "right arm swipe to the right", "right hand wave", "two hand front clap",
           "right arm throw", "cross arms in the chest", "basketball shoot", "right hand draw x",
           "right hand draw circle (clockwise)", "right hand draw circle (counter clockwise)", "draw triangle",
           "bowling (right hand)", "front boxing", "baseball swing from right", "tennis right hand forehand swing",
           "arm curl (two arms)", "tennis serve", "two hand push", "right hand knock on door",
           "right hand catch an object", "right hand pick up and throw", "jogging in place", "walking in place",
           "sit to stand", "stand to sit", "forward lunge (left foot forward)", "squat (two arms stretch out)")
LAYOUT = ("<root>/Inertial/a<k>_s<j>_t<i>_inertial.mat ('d_iner' [T, 6]: acc x, y, z, gyro x, y, z) and "
          "<root>/Skeleton/a<k>_s<j>_t<i>_skeleton.mat ('d_skel' [20, 3, T]); k = action 1..27, j = subject 1..8, "
          "i = trial 1..4")
FILE = re.compile(r"a(\d+)_s(\d+)_t(\d+)_inertial\.mat")
MODALITIES = ("acc", "gyro", "skeleton")


def find_root(data_root: Optional[str] = None) -> Path:
    given = user_root("utdmhad", data_root, LAYOUT)
    for cand in (given, given / "UTD-MHAD", given / "UTD_MHAD"):
        if (cand / "Inertial").is_dir() and (cand / "Skeleton").is_dir():
            return cand
    first = given / "Inertial" if not (given / "Inertial").is_dir() else given / "Skeleton"
    raise FileNotFoundError(f"no UTD-MHAD under {given}: expected {LAYOUT} (first missing: {first})")


def list_sequences(root: Path) -> List[Tuple[str, int, int]]:
    """[(stem 'a<k>_s<j>_t<i>', subject, action index 0..26)], sorted; misnamed or unpaired -> error."""
    out = []
    for path in sorted((root / "Inertial").glob("*.mat")):
        hit = FILE.fullmatch(path.name)
        if not hit or not 1 <= int(hit.group(1)) <= len(ACTIONS):
            raise DataFormatError(f"{path}: expected a<k>_s<j>_t<i>_inertial.mat with action k in 1..{len(ACTIONS)}")
        stem = path.name[:-len("_inertial.mat")]
        if not (root / "Skeleton" / f"{stem}_skeleton.mat").is_file():
            raise FileNotFoundError(f"{root / 'Skeleton' / (stem + '_skeleton.mat')} is missing (the skeleton of "
                                    f"{path.name}); expected {LAYOUT}")
        out.append((stem, int(hit.group(2)), int(hit.group(1)) - 1))
    if not out:
        raise FileNotFoundError(f"{root / 'Inertial'} holds no a<k>_s<j>_t<i>_inertial.mat file; expected {LAYOUT}")
    return out


def resample(x: np.ndarray, length: int) -> np.ndarray:
    """[T, C] -> [length, C] by linear interpolation over the whole sequence."""
    src = np.linspace(0.0, 1.0, len(x)) if len(x) > 1 else np.zeros(1)
    dst = np.linspace(0.0, 1.0, length)
    return np.stack([np.interp(dst, src, x[:, c]) for c in range(x.shape[1])], axis=1).astype(np.float32)


def read_sequence(root: Path, stem: str, inertial_length: int, skeleton_length: int):
    """(inertial [inertial_length, 6], skeleton [skeleton_length, 60]) of one sequence."""
    ipath, spath = root / "Inertial" / f"{stem}_inertial.mat", root / "Skeleton" / f"{stem}_skeleton.mat"
    iner = load_mat(ipath, "d_iner", "'d_iner' [T, 6] (acc x, y, z, gyro x, y, z)")
    if iner.ndim != 2 or iner.shape[1] != 6 or len(iner) < 1:
        raise DataFormatError(f"{ipath}: malformed data file, expected 'd_iner' [T, 6], got shape {iner.shape}")
    skel = load_mat(spath, "d_skel", "'d_skel' [20, 3, T] (20 joints x xyz x frames)")
    if skel.ndim != 3 or skel.shape[:2] != (20, 3) or skel.shape[2] < 1:
        raise DataFormatError(f"{spath}: malformed data file, expected 'd_skel' [20, 3, T], got shape {skel.shape}")
    skel = skel - skel.mean(axis=(0, 2), keepdims=True)               # centred on the mean joint position
    skel = skel.transpose(2, 0, 1).reshape(skel.shape[2], 60)         # [T, 20 joints * xyz]
    return resample(iner, inertial_length), resample(skel, skeleton_length)


def _read_all(root: Path, seqs, inertial_length: int, skeleton_length: int, progress: bool) -> dict:
    from tqdm.auto import tqdm
    pairs = [read_sequence(root, s, inertial_length, skeleton_length)
             for s, _, _ in tqdm(seqs, desc="prepare utdmhad", disable=not progress)]
    iner = torch.from_numpy(np.stack([p[0] for p in pairs]))
    return {"acc": iner[..., :3].contiguous(), "gyro": iner[..., 3:].contiguous(),
            "skeleton": torch.from_numpy(np.stack([p[1] for p in pairs])),
            "y": torch.tensor([a for _, _, a in seqs]), "subject": torch.tensor([j for _, j, _ in seqs]),
            "sequence": [s for s, _, _ in seqs]}


def prepare(data_root: Optional[str] = None, inertial_length: int = 128, skeleton_length: int = 64,
            progress: bool = False) -> dict:
    """Every sequence's resampled tensors (raw units, centred skeleton), built once and cached."""
    check_knob("utdmhad", "inertial_length", inertial_length, 8, 4096, integer=True)
    check_knob("utdmhad", "skeleton_length", skeleton_length, 8, 4096, integer=True)
    root = find_root(data_root)
    seqs = list_sequences(root)
    files = [root / d / f"{s}_{d.lower()}.mat" for s, _, _ in seqs for d in ("Inertial", "Skeleton")]
    opts = {"content": content_hash(files), "inertial_length": int(inertial_length),
            "skeleton_length": int(skeleton_length)}
    return cached_prepare("utdmhad", opts, lambda: _read_all(root, seqs, int(inertial_length), int(skeleton_length),
                                                              progress))


@register_dataset("utdmhad")
def build(seed: int = 0, val_fraction: float = 0.1, *, data_root: Optional[str] = None,
          modalities: tuple = ("acc", "skeleton"), inertial_length: int = 128, skeleton_length: int = 64,
          test_subjects: tuple = (2, 4, 6, 8)) -> Splits:
    modalities = tuple(modalities)
    if len(modalities) < 2 or len(set(modalities)) != len(modalities) or not set(modalities) <= set(MODALITIES):
        raise ValueError(f"utdmhad: modalities must be two or three distinct of {MODALITIES}, got {modalities}")
    d = prepare(data_root, inertial_length, skeleton_length)
    test_subjects = sorted({int(s) for s in test_subjects})
    known = sorted(set(d["subject"].tolist()))
    if not test_subjects or not set(test_subjects) < set(known):
        raise ValueError(f"utdmhad: test_subjects {test_subjects} must be a non-empty proper subset of the "
                         f"subjects {known}")
    is_test = torch.from_numpy(np.isin(d["subject"].numpy(), test_subjects))
    full = MMData(standardise({m: d[m] for m in modalities}, ~is_test), d["y"], d["subject"])
    pool, test = full.subset(torch.nonzero(~is_test).flatten()), full.subset(torch.nonzero(is_test).flatten())
    train, val = stratified_val_split(pool, val_fraction, seed)
    shapes = {m: tuple(full.x[m].shape[1:]) for m in modalities}
    info = DatasetInfo(
        name="utdmhad", modalities=shapes, class_names=list(ACTIONS),
        encoders={m: ("conv1d", {"in_channels": s[1]}) for m, s in shapes.items()},
        description="UTD-MHAD (user-supplied): inertial vs skeleton sequences resampled to a fixed length, "
                    "cross-subject split (odd subjects train, even test).",
        options=dict(modalities=modalities, inertial_length=inertial_length, skeleton_length=skeleton_length,
                     test_subjects=test_subjects))
    return Splits(train, val, test, info)
