"""`cremad`: CREMA-D (Cao et al. 2014; 7,442 clips of 91 actors, 6 emotions) from a copy you
supply, preprocessed as OGM-GE's CREMA-D loader does (the recipe ReconBoost, MLA and MIE follow).

Nothing is downloaded. The root is `data_root=` (a dataset option; notebooks: `-p data_root
/data`) or the environment variable MMLAB_DATA, and holds (either directly or in a CREMA-D/
folder under it) the public release's audio and the frames OGM-GE extracts at 1 fps:

    <root>/AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav     e.g. 1001_DFA_ANG_XX.wav
    <root>/Image-01-FPS/<clip>/*.jpg                             one folder per clip
    <root>/train.csv, <root>/test.csv                            the standard split lists
                                                                 ("<clip>,<emotion>" per line;
                                                                 only for split="standard")

Audio (OGM-GE): the waveform resampled to 22,050 Hz, repeated to fill and cut at 3 s (OGM-GE
tiles it 3 times, enough for every CREMA-D clip; a clip under 1 s is tiled more), clipped
to [-1, 1]; |STFT| with n_fft 512, hop 353 (Hann window, centred frames) -> log(|S| + 1e-7), a
257 x 188 spectrogram [1, 257, 188]. Visual: `frames` frames per clip (1 or 3), evenly spaced
over the clip's frames (OGM-GE samples them at random for training; ours are fixed so the
prepared tensors can be cached), resized to image_size x image_size, ImageNet-normalised, the
frames stacked on the channel axis [3 * frames, S, S].

Splits: "standard" = train.csv / test.csv (these lists share actors between train and test);
"actor" = an actor-disjoint split: a fixed 20 % of the actors (drawn with seed 0) are test,
validation is a seeded set of other actors. Otherwise validation is a stratified slice of train.

`python -m mmlab prepare cremad --root DIR` builds the tensors once, with a progress bar, in
shards of 256 clips that are each written atomically: an interrupted prepare resumes from the
last finished shard and never leaves a file a later load would trust half-written.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch

from mmlab.data import av_clips
from mmlab.data.av_clips import HOP, IMAGENET_MEAN, IMAGENET_STD, N_FFT, SR, frames_of  # noqa: F401 (re-exported)
from mmlab.data.base import (DataFormatError, DatasetInfo, MMData, Splits, check_knob, group_val_split,
                             register_dataset, stratified_val_split)

EMOTIONS = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
SECONDS = 3
SHARD = 256
USER_SUPPLIED = True        # read from a copy you supply (python -m mmlab datasets says so when absent)
WEAK = "visual"              # the modality the papers find starved (chapters name it a priori)
LAYOUT = ("<root>/AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav (e.g. 1001_DFA_ANG_XX.wav), "
          "<root>/Image-01-FPS/<clip>/*.jpg (frames at 1 fps, one folder per clip) and, for split='standard', "
          "<root>/train.csv and <root>/test.csv ('<clip>,<emotion>' per line)")


def find_root(data_root: Optional[str] = None) -> Path:
    """The CREMA-D folder: data_root or $MMLAB_DATA, or its CREMA-D/ subfolder."""
    return av_clips.find_root("cremad", data_root, ["CREMA-D"], [("AudioWAV",)], LAYOUT)


def list_clips(root: Path) -> List[tuple]:
    """[(clip, actor, emotion index)] of every WAV, sorted; a misnamed file is an error naming it."""
    out = []
    for wav in sorted((root / "AudioWAV").glob("*.wav")):
        parts = wav.stem.split("_")
        if len(parts) != 4 or not parts[0].isdigit() or parts[2] not in EMOTIONS:
            raise DataFormatError(f"{wav}: expected <actor>_<sentence>_<emotion>_<level>.wav with a numeric actor "
                                  f"and an emotion in {EMOTIONS}")
        out.append((wav.stem, int(parts[0]), EMOTIONS.index(parts[2])))
    if not out:
        raise FileNotFoundError(f"{root / 'AudioWAV'} holds no .wav file; expected {LAYOUT}")
    return out


def spectrogram(path: Path) -> torch.Tensor:
    """OGM-GE's audio input for one clip: log |STFT| [1, 257, 188]."""
    return av_clips.spectrogram(path, SECONDS)


def _clip_tensors(root: Path, clips, frames: int, size: int) -> dict:
    audio = torch.stack([spectrogram(root / "AudioWAV" / f"{c}.wav") for c, _, _ in clips])
    visual = torch.stack([frames_of(root / "Image-01-FPS" / c, frames, size) for c, _, _ in clips])
    return {"audio": audio, "visual": visual}


def prepare(data_root: Optional[str] = None, frames: int = 1, image_size: int = 224, progress: bool = False,
            stop_after: Optional[int] = None) -> dict:
    """Every clip's tensors, built once and cached (mmlab.data.av_clips.sharded_prepare: atomic
    shards, so an interrupted prepare resumes); stop_after=k stops after k new shards (for tests)."""
    root = find_root(data_root)
    clips = list_clips(root)
    opts = {"content": av_clips.content_hash(root / "AudioWAV", [c for c, _, _ in clips]), "frames": frames, "image_size": image_size}
    meta = dict(clip=[c for c, _, _ in clips], actor=torch.tensor([a for _, a, _ in clips]),
                y=torch.tensor([e for _, _, e in clips]))
    return av_clips.sharded_prepare("cremad", opts, clips, lambda part: _clip_tensors(root, part, frames, image_size),
                                    meta, shard=SHARD, progress=progress, stop_after=stop_after)


def _listed(root: Path, name: str) -> List[str]:
    path = root / name
    if not path.is_file():
        raise FileNotFoundError(f"split='standard' reads {path} ('<clip>,<emotion>' per line, OGM-GE's list); "
                                f"put it there, or use split='actor' (actor-disjoint, needs no list)")
    with open(path, newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    return [Path(r[0]).stem for r in rows]


def actor_test_set(actors) -> set:
    """The actor-disjoint split's test actors: a fixed 20 % of the actors, drawn with seed 0."""
    actors = sorted(set(int(a) for a in actors))
    n = max(1, int(round(0.2 * len(actors))))
    return set(np.random.default_rng(0).choice(actors, size=n, replace=False).tolist())


@register_dataset("cremad")
def build(seed: int = 0, val_fraction: float = 0.1, *, data_root: Optional[str] = None, split: str = "standard",
          frames: int = 1, image_size: int = 224) -> Splits:
    if split not in ("standard", "actor"):
        raise ValueError(f"cremad: split must be 'standard' (OGM-GE's lists) or 'actor' (actor-disjoint), got {split!r}")
    check_knob("cremad", "frames", frames, 1, 16, integer=True)
    check_knob("cremad", "image_size", image_size, 16, 1024, integer=True)
    d = prepare(data_root, frames, image_size)
    full = MMData({"audio": d["audio"], "visual": d["visual"]}, d["y"], d["actor"])
    index = {c: i for i, c in enumerate(d["clip"])}
    if split == "standard":
        root = find_root(data_root)
        tr, te = (_listed(root, n) for n in ("train.csv", "test.csv"))
        unknown = [c for c in tr + te if c not in index]
        if unknown:
            raise DataFormatError(f"{root}: the split lists name clips with no AudioWAV file, first {unknown[0]!r}")
        pool, test = full.subset([index[c] for c in tr]), full.subset([index[c] for c in te])
        train, val = stratified_val_split(pool, val_fraction, seed)
    else:
        is_test = np.isin(d["actor"].numpy(), sorted(actor_test_set(d["actor"].tolist())))
        pool, test = full.subset(np.flatnonzero(~is_test)), full.subset(np.flatnonzero(is_test))
        train, val = group_val_split(pool, val_fraction, seed)
    info = DatasetInfo(
        name="cremad", modalities={"audio": (1, 257, 188), "visual": (3 * frames, image_size, image_size)},
        class_names=list(EMOTIONS),
        encoders={"audio": ("resnet18", {"in_channels": 1}), "visual": ("resnet18", {"in_channels": 3 * frames})},
        description="CREMA-D (user-supplied), OGM-GE's preprocessing: log-STFT audio, ImageNet-normalised frames.",
        options=dict(split=split, frames=frames, image_size=image_size))
    return Splits(train, val, test, info)
