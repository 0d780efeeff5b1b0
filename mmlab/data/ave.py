"""`ave`: AVE, the Audio-Visual Event dataset (Tian et al. 2018; 4,143 10-s YouTube videos, 28
event classes) from a copy you supply, preprocessed as OGM-GE's public AVE code does (ReconBoost
and ERL-MR report the same 257 x 1004 spectrogram).

Nothing is downloaded. The root is `data_root=` (notebooks: `-p data_root /data`) or the
environment variable MMLAB_DATA, and holds (directly or in an AVE_Dataset/ or AVE/ folder under it):

    <root>/Annotations.txt                  the release's annotations (first line is a header)
    <root>/trainSet.txt, valSet.txt, testSet.txt
                                            the official splits (3,339 / 402 / 402 videos); every line
                                            is Category&VideoID&Quality&StartTime&EndTime
    <root>/Audio/<VideoID>.wav              (OGM-GE's folder name audio/ is accepted too)
    <root>/Image-01-FPS/<VideoID>/*.jpg     1 frame per second (OGM-GE's visual/ is accepted too)

Decoding video needs ffmpeg, which mmlab does not depend on: extract the audio and frames once,
from the folder of the release's .mp4 files (AVE_Dataset/AVE/), with OGM-GE's audio settings
(pre-processing/AVE&CREMAD/video_to_wav.py: 16 kHz mono 16-bit PCM) and 1 frame per second:

    cd AVE_Dataset && mkdir -p Audio Image-01-FPS && for f in AVE/*.mp4; do id=$(basename "$f" .mp4)
      ffmpeg -n -i "$f" -acodec pcm_s16le -ac 1 -ar 16000 "Audio/$id.wav"
      mkdir -p "Image-01-FPS/$id" && ffmpeg -n -i "$f" -vf fps=1 "Image-01-FPS/$id/frame_%05d.jpg"; done

(OGM-GE's frame script, video2frame-1fps.py, keeps the frame at the middle of each second with
moviepy; ffmpeg's fps=1 keeps one frame per second too, up to half a second apart from it.)

Audio, OGM-GE's pre-processing/obtain_audio_spectrogram.py (mmlab.data.av_clips.psd_spectrogram):
librosa.load resamples the 16 kHz WAV to 22,050 Hz, the waveform is tiled 10 times and cut at
160,000 samples, clipped to [-1, 1]; scipy.signal.spectrogram (nperseg 512, noverlap 353, i.e. a
hop of 159) -> log(PSD + 1e-7), standardised per clip -> [1, 257, 1004]. Note what that covers:
160,000 samples at 22,050 Hz are the first 7.26 s of the 10-s clip, while the papers describe "the
whole audio" (ReconBoost: "the whole audio data is transformed into a spectrogram of size 257x1004").
`audio_rate=16000` reads the whole 10 s instead (160,000 samples at 16 kHz), same shape; the default
22050 is OGM-GE's code. We resample with scipy's polyphase filter, librosa with soxr.

Visual: `frames` frames per clip (default 3, as OGM-GE and ReconBoost), picked as OGM-GE's AVE
loader does (frame k * (n // frames), i.e. seconds 1, 4 and 7 of 10), resized to image_size, ImageNet-
normalised, stacked on channels [3 * frames, S, S] (OGM-GE crops and flips at random for training;
ours are fixed so the prepared tensors can be cached).

Splits: the official trainSet / valSet / testSet lists (AVE has a real validation split, so
`val_fraction` is unused). A video listed twice in one list keeps its first line (as ReconBoost's
loader); class names are the sorted categories of Annotations.txt (as OGM-GE sorts its classes).

`python -m mmlab prepare ave --root DIR` builds the tensors once, in atomic, resumable shards.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch

from mmlab.data import av_clips
from mmlab.data.base import DataFormatError, DatasetInfo, MMData, Splits, check_knob, register_dataset

LISTS = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
HEADER = "Category&VideoID&Quality&StartTime&EndTime"
SAMPLES, RATES = 160_000, (22050, 16000)
SHARD = 256
USER_SUPPLIED = True
WEAK = "visual"              # the modality the papers find starved (chapters name it a priori)
LAYOUT = ("<root>/Annotations.txt, <root>/trainSet.txt, <root>/valSet.txt and <root>/testSet.txt "
          f"('{HEADER}' per line), <root>/Audio/<VideoID>.wav (16 kHz mono, extracted with ffmpeg) and "
          "<root>/Image-01-FPS/<VideoID>/*.jpg (1 frame per second); see mmlab/data/ave.py for the two ffmpeg commands")
HOW = "extract its audio and frames with the two ffmpeg commands in mmlab/data/ave.py's docstring"


def find_root(data_root: Optional[str] = None) -> Path:
    """The AVE folder: data_root or $MMLAB_DATA, or its AVE_Dataset/ or AVE/ subfolder."""
    required = [("Annotations.txt",)] + [(n,) for n in LISTS.values()] + [av_clips.AUDIO_DIRS, av_clips.FRAME_DIRS]
    return av_clips.find_root("ave", data_root, ["AVE_Dataset", "AVE"], required, LAYOUT)


def read_list(path: Path) -> List[Tuple[str, str, int]]:
    """[(VideoID, category, line number)] of an AVE list; a malformed line is an error naming it."""
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        line = line.strip()
        if not line or line == HEADER:
            continue
        f = line.split("&")
        if len(f) != 5 or not f[0] or not f[1] or not (f[3].isdigit() and f[4].isdigit()):
            raise DataFormatError(f"{path}, line {i}: expected '{HEADER}' (5 fields separated by '&', whole "
                                  f"seconds for StartTime and EndTime), got {line!r}")
        out.append((f[1], f[0], i))
    return out


def read_splits(root: Path) -> Tuple[List[str], Dict[str, List[Tuple[str, str]]]]:
    """(class names, {split: [(VideoID, category)]}): the official lists, each video once per list."""
    classes = sorted({c for _, c, _ in read_list(root / "Annotations.txt")})
    splits = {}
    for split, name in LISTS.items():
        rows, seen = [], set()
        for vid, cat, i in read_list(root / name):
            if cat not in classes:
                raise DataFormatError(f"{root / name}, line {i}: category {cat!r} is not in Annotations.txt")
            if vid not in seen:
                seen.add(vid)
                rows.append((vid, cat))
        splits[split] = rows
    return classes, splits


def _clip_tensors(audio: Path, visual: Path, clips: List[str], frames: int, size: int, rate: int) -> dict:
    return {"audio": torch.stack([av_clips.psd_spectrogram(audio / f"{c}.wav", SAMPLES, rate) for c in clips]),
            "visual": torch.stack([av_clips.frames_of(visual / c, frames, size, "ogm_ge") for c in clips])}


def prepare(data_root: Optional[str] = None, frames: int = 3, image_size: int = 224, audio_rate: int = 22050,
            progress: bool = False, stop_after: Optional[int] = None) -> dict:
    """Every listed video's tensors, built once and cached in atomic, resumable shards
    (mmlab.data.av_clips.sharded_prepare); stop_after=k stops after k new shards (for tests)."""
    if audio_rate not in RATES:
        raise ValueError(f"ave: audio_rate must be 22050 (OGM-GE's code: the first 7.26 s) or 16000 (the whole "
                         f"10 s), got {audio_rate!r}")
    root = find_root(data_root)
    classes, splits = read_splits(root)
    audio, visual = av_clips.locate_clips(root, {LISTS[s]: [v for v, _ in r] for s, r in splits.items()}, HOW)
    label = {v: classes.index(c) for rows in reversed(list(splits.values())) for v, c in rows}  # train's wins
    clips = sorted(label)
    opts = {"content": av_clips.content_hash(audio, clips), "frames": frames, "image_size": image_size,
            "audio_rate": audio_rate}
    meta = dict(clip=clips, y=torch.tensor([label[c] for c in clips]))
    return av_clips.sharded_prepare(
        "ave", opts, clips, lambda part: _clip_tensors(audio, visual, part, frames, image_size, audio_rate), meta,
        shard=SHARD, progress=progress, stop_after=stop_after)


@register_dataset("ave")
def build(seed: int = 0, val_fraction: float = 0.1, *, data_root: Optional[str] = None, frames: int = 3,
          image_size: int = 224, audio_rate: int = 22050) -> Splits:
    """AVE's official train / val / test lists (seed and val_fraction are unused: the split is fixed)."""
    check_knob("ave", "frames", frames, 1, 16, integer=True)
    check_knob("ave", "image_size", image_size, 16, 1024, integer=True)
    d = prepare(data_root, frames, image_size, audio_rate)
    classes, splits = read_splits(find_root(data_root))
    index = {c: i for i, c in enumerate(d["clip"])}

    def part(rows) -> MMData:
        idx = torch.tensor([index[v] for v, _ in rows], dtype=torch.long)
        return MMData({m: d[m][idx] for m in ("audio", "visual")}, torch.tensor([classes.index(c) for _, c in rows]))
    info = DatasetInfo(
        name="ave", modalities={"audio": (1, 257, 1004), "visual": (3 * frames, image_size, image_size)},
        class_names=classes,
        encoders={"audio": ("resnet18", {"in_channels": 1}), "visual": ("resnet18", {"in_channels": 3 * frames})},
        description=f"AVE (user-supplied), OGM-GE's preprocessing: 257x1004 log-PSD audio, {frames} "
                    "ImageNet-normalised frames.",
        options=dict(frames=frames, image_size=image_size, audio_rate=audio_rate))
    return Splits(part(splits["train"]), part(splits["val"]), part(splits["test"]), info)
