"""What the audio-visual clip datasets (cremad, ave, kinetics_sounds) share: finding the copy you
supply, OGM-GE's audio and visual preprocessing, and the sharded, resumable prepare.

Audio, two recipes from OGM-GE's public code (github.com/GeWu-Lab/OGM-GE_CVPR2022):
- `spectrogram` (its CREMA-D loader, dataset/CramedDataset.py): the waveform at 22,050 Hz, tiled to
  fill and cut at `seconds`, clipped to [-1, 1]; log(|STFT| + 1e-7) with n_fft 512, hop 353, Hann
  window, centred frames -> [1, 257, 1 + 22050 * seconds // 353] (188 frames for 3 s, 625 for 10 s).
- `psd_spectrogram` (its AVE script, pre-processing/obtain_audio_spectrogram.py): the waveform at
  22,050 Hz (librosa.load's default rate) tiled 10 times and cut at 160,000 samples, clipped;
  scipy.signal.spectrogram with nperseg 512, noverlap 353 (hop 159, its default Tukey(0.25) window,
  power spectral density) -> log(. + 1e-7), standardised per clip -> [1, 257, 1004].
We resample with scipy's polyphase filter where librosa uses soxr: values differ slightly.

Visual (`frames_of`): `frames` frames of a clip's folder of jpgs (sorted by name), resized to
S x S (bilinear), ImageNet-normalised, stacked on the channel axis [3 * frames, S, S].

Prepare (`sharded_prepare`): the clips' tensors in shards of SHARD clips, each written atomically
(mmlab.utils.atomic_torch_save), then one final file through mmlab.data.base.cached_prepare; the
shards are removed only once that file is saved, so an interrupted prepare resumes from the last
finished shard and never leaves a final file a later load would trust half-written.
"""
from __future__ import annotations

from math import gcd
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from mmlab.data.base import DataFormatError, cached_prepare
from mmlab.data.sources import user_root
from mmlab.utils import atomic_torch_save, cache_root, stable_hash

SR, N_FFT, HOP = 22050, 512, 353
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SHARD = 256
_SCALE = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2.0 ** 31}


def find_root(dataset: str, data_root: Optional[str], subfolders: Sequence[str],
              required: Sequence[Sequence[str]], layout: str) -> Path:
    """The dataset's folder: data_root or $MMLAB_DATA, or one of its `subfolders`, holding every
    entry of `required` (each a tuple of accepted names); otherwise an error naming the layout and
    the first missing path."""
    given = user_root(dataset, data_root, layout)
    cands = [given] + [given / s for s in subfolders]
    for cand in cands:
        if all(pick(cand, names) is not None for names in required):
            return cand
    best = next((c for c in cands[1:] if c.is_dir()), cands[0])
    missing = next(best / names[0] for names in required if pick(best, names) is None)
    raise FileNotFoundError(f"no {dataset} data under {given}: expected {layout} (first missing: {missing})")


def pick(root: Path, names: Sequence[str]) -> Optional[Path]:
    """The first of root/name (name in names) that exists, or None."""
    return next((root / n for n in names if (root / n).exists()), None)


def read_wav(path: Path, rate: int = SR) -> np.ndarray:
    """A WAV file as a mono float32 waveform in [-1, 1] resampled to `rate`; errors name the file."""
    from scipy.io import wavfile
    from scipy.signal import resample_poly
    try:
        src, x = wavfile.read(path)
    except Exception as e:
        raise DataFormatError(f"{path}: not a readable WAV file ({type(e).__name__}: {e})") from None
    if x.dtype == np.uint8:
        x = (x.astype(np.float32) - 128) / 128
    x = x.astype(np.float32) / _SCALE.get(x.dtype, 1.0)
    x = x.mean(axis=1) if x.ndim == 2 else x                           # mono
    if x.size == 0:
        raise DataFormatError(f"{path}: empty WAV file")
    g = gcd(int(src), rate)
    return resample_poly(x, rate // g, int(src) // g).astype(np.float32)


def _fill(x: np.ndarray, n: int) -> np.ndarray:
    """x tiled until it fills n samples (OGM-GE tiles a fixed number of times, enough for its
    clips; a shorter clip is tiled more), cut at n and clipped to [-1, 1]."""
    return np.clip(np.tile(x, -(-n // len(x)))[:n], -1, 1)


def spectrogram(path: Path, seconds: float = 3, rate: int = SR, n_fft: int = N_FFT, hop: int = HOP) -> torch.Tensor:
    """OGM-GE's CREMA-D audio input: log |STFT| [1, n_fft // 2 + 1, 1 + rate * seconds // hop]."""
    x = _fill(read_wav(path, rate), int(rate * seconds))
    s = torch.stft(torch.from_numpy(x), n_fft, hop, window=torch.hann_window(n_fft), center=True,
                   pad_mode="constant", return_complex=True)
    return torch.log(s.abs() + 1e-7).unsqueeze(0)


def psd_spectrogram(path: Path, samples: int = 160_000, rate: int = SR) -> torch.Tensor:
    """OGM-GE's AVE audio input: standardised log power spectral density [1, 257, 1004]."""
    from scipy.signal import spectrogram as psd
    x = _fill(read_wav(path, rate), samples)
    _, _, s = psd(x, rate, nperseg=512, noverlap=353)
    s = np.log(s + 1e-7)
    s = (s - s.mean()) / (s.std() + 1e-9)
    return torch.from_numpy(s.astype(np.float32)).unsqueeze(0)


def frames_of(folder: Path, frames: int, size: int, spacing: str = "even") -> torch.Tensor:
    """`frames` frames of one clip, resized and ImageNet-normalised [3 * frames, S, S]. spacing "even":
    evenly spaced from first to last; "ogm_ge": OGM-GE's AVE pick, frame k * (n // frames)."""
    from PIL import Image
    files = sorted(folder.glob("*.jpg"))
    if not files:
        raise DataFormatError(f"{folder}: expected the clip's frames as .jpg files in this folder")
    if spacing == "ogm_ge":
        idx = [k * (len(files) // frames) for k in range(frames)]
    else:
        idx = np.linspace(0, len(files) - 1, frames).round().astype(int)
    mean, std = torch.tensor(IMAGENET_MEAN).view(3, 1, 1), torch.tensor(IMAGENET_STD).view(3, 1, 1)
    out = []
    for i in idx:
        try:
            img = Image.open(files[i]).convert("RGB").resize((size, size), Image.BILINEAR)
        except Exception as e:
            raise DataFormatError(f"{files[i]}: not a readable image ({type(e).__name__}: {e})") from None
        t = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
        out.append((t - mean) / std)
    return torch.cat(out)


AUDIO_DIRS, FRAME_DIRS = ("Audio", "audio"), ("Image-01-FPS", "visual")   # ours, OGM-GE's names


def locate_clips(root: Path, listed: Dict[str, List[str]], how: str) -> Tuple[Path, Path]:
    """(audio folder, frames folder) under root, after checking that every clip a split list names
    ({list file: clips}) has <audio>/<clip>.wav and <frames>/<clip>/; else an error naming the first
    missing path, the list naming the clip, and `how` to extract it."""
    audio, visual = pick(root, AUDIO_DIRS), pick(root, FRAME_DIRS)
    for name, clips in listed.items():
        for clip in clips:
            for p in (audio / f"{clip}.wav", visual / clip):
                if not p.exists():
                    raise DataFormatError(f"{p} is missing: {root / name} lists clip {clip!r}; {how}")
    return audio, visual


def content_hash(audio: Path, clips: List[str]) -> str:
    """What the prepared tensors are made of: the clip names and their WAV files' sizes."""
    return stable_hash({"clips": list(clips), "sizes": file_sizes(audio / f"{c}.wav" for c in clips)})


def file_sizes(paths) -> list:
    return [p.stat().st_size for p in paths]


def sharded_prepare(name: str, opts: dict, items: list, make_shard: Callable[[list], dict], meta: dict,
                    shard: int = SHARD, progress: bool = False, stop_after: Optional[int] = None) -> dict:
    """Every item's tensors (make_shard(items[i:i + shard]) -> {key: Tensor}), concatenated, plus
    `meta`; cached by cached_prepare(name, opts). stop_after=k stops after k new shards (for tests)."""
    shard_dir = cache_root() / "data" / f"{name}-{stable_hash(opts)}.shards"

    def build() -> dict:
        return _from_shards(name, items, make_shard, meta, shard_dir, shard, progress, stop_after)
    build.__module__ = make_shard.__module__        # cached_prepare keys the file on the code of the
    d = cached_prepare(name, opts, build)            # dataset's module (which imports this one)
    if shard_dir.is_dir():                           # only once the whole file is saved
        for p in shard_dir.glob("*.pt"):
            p.unlink()
        shard_dir.rmdir()
    return d


def _from_shards(name: str, items: list, make_shard, meta: dict, shard_dir: Path, shard: int, progress: bool,
                 stop_after: Optional[int]) -> dict:
    from tqdm.auto import tqdm
    starts, done = range(0, len(items), shard), 0
    for s in tqdm(starts, desc=f"prepare {name} (shards)", disable=not progress):
        path = shard_dir / f"{s // shard:05d}.pt"
        try:
            torch.load(path, weights_only=True)
            continue                                 # finished in an earlier (interrupted) prepare
        except Exception:
            pass
        if stop_after is not None and done >= stop_after:
            raise KeyboardInterrupt(f"prepare stopped after {done} new shards (stop_after)")
        atomic_torch_save(make_shard(items[s:s + shard]), path)
        done += 1
    parts = [torch.load(shard_dir / f"{s // shard:05d}.pt", weights_only=True) for s in starts]
    d = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    d.update(meta)
    return d
