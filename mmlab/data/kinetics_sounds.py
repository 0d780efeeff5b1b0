"""`kinetics_sounds`: Kinetics-Sounds (Arandjelovic & Zisserman 2017), the Kinetics clips of
classes one can hear, from a copy you supply. MIE (following OGM-GE) uses 31 classes and about
19,000 10-s clips (15K train / 1.9K val / 1.9K test); OGM-GE's published lists
(data/KineticSound/my_train.txt, my_test.txt) hold 14,799 train and 2,597 test clips of 31 classes.

Nothing is downloaded. The root is `data_root=` (notebooks: `-p data_root /data`) or the
environment variable MMLAB_DATA, and holds (directly or in a Kinetics-Sounds/ folder under it):

    <root>/train.csv, <root>/test.csv     '<clip>,<label name>' per line (clip: the YouTube id, or
                                          <id>_<start>_<end> as OGM-GE names them); or OGM-GE's own
                                          lists my_train.txt, my_test.txt ('<clip>,10,<class index>')
    <root>/Audio/<clip>.wav               (audio/ accepted too)
    <root>/Image-01-FPS/<clip>/*.jpg      1 frame per second (visual/ accepted too)

Decoding video needs ffmpeg, which mmlab does not depend on: extract the audio and frames once
(OGM-GE's VGGSound/KS script, data/VGGSound/mp4_to_wav.py, writes 16 kHz 16-bit PCM):

    mkdir -p Audio Image-01-FPS && for f in videos/*.mp4; do id=$(basename "$f" .mp4)
      ffmpeg -n -i "$f" -acodec pcm_s16le -ac 1 -ar 16000 "Audio/$id.wav"
      mkdir -p "Image-01-FPS/$id" && ffmpeg -n -i "$f" -vf fps=1 "Image-01-FPS/$id/frame_%05d.jpg"; done

Audio (ours, on the papers' 10-s clips): OGM-GE's CREMA-D recipe (mmlab.data.av_clips.spectrogram)
over the whole clip: 22,050 Hz, tiled to fill and cut at 10 s, log |STFT| with n_fft 512, hop 353
-> [1, 257, 625]. The public code of this family differs and none of it is a fixed recipe: OGM-GE's
KineticSound/process_audio.py computes 128-bin Kaldi fbanks (1024 frames); the GeWu-Lab KS loaders
(PMR / MMPareto style) take a random 5-s window at 16 kHz with n_fft 256, hop 128.

Visual: `frames` frames per clip (default 3, as those loaders), evenly spaced over the clip's
frames (theirs are random for training; ours are fixed so the tensors can be cached), resized,
ImageNet-normalised and stacked on channels [3 * frames, S, S].

Splits: the train / test lists; validation is a stratified, seeded slice of train (MIE's 1.9K
validation clips are not published). Class names: the sorted label names of the lists, or
"class <k>" for OGM-GE's index lists (it does not publish its index -> name table).

`python -m mmlab prepare kinetics_sounds --root DIR` builds the tensors once, in atomic,
resumable shards.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from mmlab.data import av_clips
from mmlab.data.base import (DataFormatError, DatasetInfo, MMData, Splits, check_knob, register_dataset,
                             stratified_val_split)

LISTS = {"train": ("train.csv", "my_train.txt"), "test": ("test.csv", "my_test.txt")}
SECONDS = 10
SHARD = 256
USER_SUPPLIED = True
WEAK = "visual"              # the modality the papers find starved (chapters name it a priori)
LAYOUT = ("<root>/train.csv and <root>/test.csv ('<clip>,<label name>' per line; or OGM-GE's my_train.txt and "
          "my_test.txt, '<clip>,10,<class index>'), <root>/Audio/<clip>.wav and <root>/Image-01-FPS/<clip>/*.jpg "
          "(1 frame per second); see mmlab/data/kinetics_sounds.py for the two ffmpeg commands")
HOW = "extract its audio and frames with the two ffmpeg commands in mmlab/data/kinetics_sounds.py's docstring"


def find_root(data_root: Optional[str] = None) -> Path:
    """The Kinetics-Sounds folder: data_root or $MMLAB_DATA, or its Kinetics-Sounds/ subfolder."""
    required = list(LISTS.values()) + [av_clips.AUDIO_DIRS, av_clips.FRAME_DIRS]
    return av_clips.find_root("kinetics_sounds", data_root, ["Kinetics-Sounds", "KineticsSounds"], required, LAYOUT)


def read_list(path: Path) -> List[Tuple[str, str]]:
    """[(clip, label)] of a split list ('<clip>,<label name>' or '<clip>,<n>,<class index>');
    a malformed line is an error naming it. A first line starting 'youtube_id,' is a header."""
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        f = [x.strip() for x in line.split(",")] if line.strip() else []
        if not f or (i == 1 and f[0] in ("youtube_id", "clip")):
            continue
        if not f[0] or len(f) not in (2, 3) or not f[-1] or (len(f) == 3 and not f[2].isdigit()):
            raise DataFormatError(f"{path}, line {i}: expected '<clip>,<label name>' or OGM-GE's "
                                  f"'<clip>,<n>,<class index>', got {line.strip()!r}")
        out.append((f[0], f[-1] if len(f) == 2 else f"class {int(f[2])}"))
    if not out:
        raise DataFormatError(f"{path}: the list is empty; expected {LAYOUT}")
    return out


def read_splits(root: Path) -> Tuple[List[str], Dict[str, Tuple[str, List[Tuple[str, str]]]]]:
    """(class names, {split: (list file name, [(clip, label)])})."""
    splits = {s: next((n, read_list(root / n)) for n in names if (root / n).is_file()) for s, names in LISTS.items()}
    labels = {lab for _, rows in splits.values() for _, lab in rows}
    if all(lab.startswith("class ") and lab[6:].isdigit() for lab in labels):    # OGM-GE's index lists
        classes = [f"class {k}" for k in range(1 + max(int(lab[6:]) for lab in labels))]
    else:
        classes = sorted(labels)
    return classes, splits


def _clip_tensors(audio: Path, visual: Path, clips: List[str], frames: int, size: int) -> dict:
    return {"audio": torch.stack([av_clips.spectrogram(audio / f"{c}.wav", SECONDS) for c in clips]),
            "visual": torch.stack([av_clips.frames_of(visual / c, frames, size) for c in clips])}


def prepare(data_root: Optional[str] = None, frames: int = 3, image_size: int = 224, progress: bool = False,
            stop_after: Optional[int] = None) -> dict:
    """Every listed clip's tensors, built once and cached in atomic, resumable shards
    (mmlab.data.av_clips.sharded_prepare); stop_after=k stops after k new shards (for tests)."""
    root = find_root(data_root)
    classes, splits = read_splits(root)
    audio, visual = av_clips.locate_clips(root, {n: [c for c, _ in rows] for n, rows in splits.values()}, HOW)
    label = {c: classes.index(lab) for _, rows in splits.values() for c, lab in rows}
    clips = sorted(label)
    opts = {"content": av_clips.content_hash(audio, clips), "frames": frames, "image_size": image_size}
    meta = dict(clip=clips, y=torch.tensor([label[c] for c in clips]))
    return av_clips.sharded_prepare(
        "kinetics_sounds", opts, clips, lambda part: _clip_tensors(audio, visual, part, frames, image_size), meta,
        shard=SHARD, progress=progress, stop_after=stop_after)


@register_dataset("kinetics_sounds")
def build(seed: int = 0, val_fraction: float = 0.1, *, data_root: Optional[str] = None, frames: int = 3,
          image_size: int = 224) -> Splits:
    check_knob("kinetics_sounds", "frames", frames, 1, 16, integer=True)
    check_knob("kinetics_sounds", "image_size", image_size, 16, 1024, integer=True)
    d = prepare(data_root, frames, image_size)
    classes, splits = read_splits(find_root(data_root))
    index = {c: i for i, c in enumerate(d["clip"])}

    def part(rows) -> MMData:
        idx = torch.tensor([index[c] for c, _ in rows], dtype=torch.long)
        y = torch.tensor([classes.index(lab) for _, lab in rows])
        return MMData({m: d[m][idx] for m in ("audio", "visual")}, y)
    train, val = stratified_val_split(part(splits["train"][1]), val_fraction, seed)
    info = DatasetInfo(
        name="kinetics_sounds", modalities={"audio": (1, 257, 625), "visual": (3 * frames, image_size, image_size)},
        class_names=classes,
        encoders={"audio": ("resnet18", {"in_channels": 1}), "visual": ("resnet18", {"in_channels": 3 * frames})},
        description="Kinetics-Sounds (user-supplied): 10-s log-STFT audio (OGM-GE's CREMA-D recipe), "
                    "ImageNet-normalised frames.",
        options=dict(frames=frames, image_size=image_size))
    return Splits(train, val, part(splits["test"][1]), info)
