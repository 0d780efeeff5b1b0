"""The papers' extracted-feature datasets, read from a copy you supply: `mosi`, `mosei`, `sims`
(ReconBoost), `iemocap`, `food101`, `mvsa` (MLA), `twitter2015`, `sarcasm`, `nvgesture` (MIE).

Nothing is downloaded or extracted here. The root is `data_root=` (notebooks: `-p data_root
/data`) or the environment variable MMLAB_DATA; each set is looked for in its own folder under
it (e.g. <root>/MOSI/) or in the root itself. `python -m mmlab prepare mosi --root DIR
--data-opt dataset=mosi` parses the files once into cached tensors (mmlab.data.base.
cached_prepare: atomic, a damaged cache file is rebuilt; keyed on the files' names, sizes and
modification times). The files are pickles you downloaded yourself: pickle runs code when
loaded, so read only copies from the sources named below.

Sentiment sets (ReconBoost Sec. 5 / App. C): the MMSA feature pickles ReconBoost's loader reads
(MMSA-FET features: BERT text 768-d; Facet vision 20-d MOSI / 35-d MOSEI, OpenFace 709-d SIMS;
COVAREP audio 5-d MOSI / 74-d MOSEI, LibROSA 33-d SIMS) or MultiBench's `affect` pickles:

    <root>/MOSI/{unaligned_50,aligned_50}.pkl  (also under Processed/)   or <root>/MOSI/mosi_raw.pkl
    <root>/MOSEI/{unaligned_50,aligned_50}.pkl (also under Processed/)   or <root>/MOSEI/mosei_raw.pkl
    <root>/SIMS/unaligned_39.pkl               (also under Processed/)

a dict {"train", "valid", "test"} of dicts with arrays "text", "audio", "vision" [N, T, D] and
"regression_labels" [N] (MMSA) or "labels" [N, 1, 1] (MultiBench). HDF5 (.h5/.csd) releases are
not read (h5py is not installed): use these pickles. The files' own train/valid/test splits are
used (ReconBoost Table 6, train/test: MOSI 1,284/686, MOSEI 16,327/4,659, SIMS 1,368/457; the
files' valid splits come on top; MMSA's MOSEI train has 16,326). Sequences are kept as
[T, D] at the length the file pads them to (MMSA unaligned MOSI: text 50 steps; MultiBench: 50
aligned steps), -inf/inf/NaN set to 0 as MMSA does; a split padded to another length than train
is cut or zero-padded to train's. pool="mean" averages audio and visual over all T steps, padding
included, to [D] vectors as ReconBoost's loader does (its AudioNet/VisualNet are MLPs, text stays
a sequence for its LSTM). Classes (the score is in [-3, 3], SIMS [-1, 1]): classes=3, ReconBoost's
negative (< 0) / neutral (= 0) / positive (> 0), the sign rule of MMSA's classification_labels
which ReconBoost reads, computed here from the score so MultiBench's files work too; classes=2
is the common negative (< 0) / non-negative split (MLA and MIE do not use these sets).

IEMOCAP: either the DialogueRNN/MMGCN feature pickle <root>/IEMOCAP/IEMOCAP_features.pkl (videoIDs,
videoSpeakers, videoLabels, videoText [n, 100], videoAudio [n, 100], videoVisual [n, 512],
videoSentence, trainVid, testVid; utterances of sessions 1-4 train, session 5 test, so the test
speakers are new; validation is a seeded set of whole training dialogues), or the npz layout
below with MLA's own features. classes=4 is MLA's label set (stat_iemo.txt: angry, happy, neutral,
sad; from the 6-class pickle: excited merged into happy and frustrated dropped, the usual 4-class
IEMOCAP; MLA's lists do not say how they were built), classes=6 the pickle's own labels. MLA split
the utterances at random 60/20/20 without a seed (gen_iemo_txt.py), not reproducible here.

Image-text sets and NVGesture: their public releases are raw images / text / video, and the papers
encode them with large networks, so you run the extractor and save the features in one simple
layout (MLA: M3AE image and text encoders for Food-101 and MVSA-Single, CLIP in its Table 4; MIE:
ResNet-50 images and BERT text for Twitter2015 and Sarcasm, I3D for NVGesture's RGB, depth and
optical-flow streams, 1,024-d heads):

    <root>/<Name>/{train,val,test}.npz   arrays <modality> [N, D] or [N, T, D] and "label" [N]
                                         (ints 0..C-1); val.npz optional
    <root>/<Name>/classes.txt            the C class names, one a line, in label order

    food101      Food101/      image, text            101 classes  (UPMC Food-101; MLA's train/dev/test)
    mvsa         MVSA/         image, text              3 classes  (MVSA-Single; MLA)
    twitter2015  Twitter2015/  image, text              3 classes  (3,179 / 1,122 / 1,037; MIE)
    sarcasm      Sarcasm/      image, text              2 classes  (19,816 / 2,410 / 2,409; MIE)
    nvgesture    NVGesture/    rgb, depth, of          25 classes  (1,050 / 482, no val; MIE)
    iemocap      IEMOCAP/      audio, visual, text      4 classes  (MLA's)

Without a val.npz (or val split in a pickle), validation is a stratified slice of train. Features
are used as stored (no normalisation). Encoders: a [D] modality -> "mlp", a [T, D] one -> "gru".
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from mmlab.data.base import (DataFormatError, DatasetInfo, MMData, Splits, cached_prepare, expect,
                             group_val_split, register_dataset, stratified_val_split)
from mmlab.data.sources import content_hash, user_root

USER_SUPPLIED = True        # read from a copy you supply (python -m mmlab datasets says so when absent)
SPLITS = ("train", "val", "test")
PICKLE_SPLITS = {"train": ("train",), "val": ("valid", "val", "dev"), "test": ("test",)}
SENTIMENT_CLASSES = {2: ("negative", "non-negative"), 3: ("negative", "neutral", "positive")}
IEMOCAP6 = ("happy", "sad", "neutral", "angry", "excited", "frustrated")    # DialogueRNN's label order
IEMOCAP4 = ("angry", "happy", "neutral", "sad")                             # MLA's stat_iemo.txt, sorted
IEMOCAP6_TO_4 = {0: 1, 1: 3, 2: 2, 3: 0, 4: 1}                              # excited -> happy; frustrated dropped


@dataclass(frozen=True)
class Spec:
    folders: Tuple[str, ...]         # folders tried under the root (then the root itself)
    pickles: Tuple[str, ...]         # pickle files tried in order; () = npz layout only
    modalities: Tuple[str, ...]      # the npz layout's modality arrays
    n_classes: int                   # classes.txt length of the npz layout
    paper: str


def _mmsa(n: int) -> Tuple[str, ...]:
    return (f"unaligned_{n}.pkl", f"aligned_{n}.pkl", f"Processed/unaligned_{n}.pkl", f"Processed/aligned_{n}.pkl")


SPECS: Dict[str, Spec] = {
    "mosi": Spec(("MOSI", "mosi", "CMU-MOSI"), _mmsa(50) + ("mosi_raw.pkl",), (), 0, "ReconBoost"),
    "mosei": Spec(("MOSEI", "mosei", "CMU-MOSEI"), _mmsa(50) + ("mosei_raw.pkl",), (), 0, "ReconBoost"),
    "sims": Spec(("SIMS", "sims", "CH-SIMS"), ("unaligned_39.pkl", "Processed/unaligned_39.pkl"), (), 0,
                 "ReconBoost"),
    "iemocap": Spec(("IEMOCAP", "iemocap"), ("IEMOCAP_features.pkl",), ("audio", "visual", "text"), 4, "MLA"),
    "food101": Spec(("Food101", "food101", "Food-101"), (), ("image", "text"), 101, "MLA"),
    "mvsa": Spec(("MVSA", "mvsa", "MVSA_Single"), (), ("image", "text"), 3, "MLA"),
    "twitter2015": Spec(("Twitter2015", "twitter2015"), (), ("image", "text"), 3, "MIE"),
    "sarcasm": Spec(("Sarcasm", "sarcasm"), (), ("image", "text"), 2, "MIE"),
    "nvgesture": Spec(("NVGesture", "nvgesture"), (), ("rgb", "depth", "of"), 25, "MIE"),
}
SENTIMENT = ("mosi", "mosei", "sims")


def layout(name: str) -> str:
    """The files `name` reads, in words (error messages and LAYOUT)."""
    s = SPECS[name]
    where = f"<root>/{s.folders[0]}/"
    parts = [f"{where}{f}" for f in s.pickles]
    if s.modalities:
        parts.append(f"{where}{{train,val,test}}.npz (arrays {', '.join(s.modalities)} [N, D] or [N, T, D] and "
                     f"label [N]; val.npz optional) with {where}classes.txt ({s.n_classes} class names, one a line)")
    return " or ".join(parts)


LAYOUT = "; ".join(f"{n}: {layout(n)}" for n in SPECS)


def find_source(name: str, data_root: Optional[str] = None, file: Optional[str] = None) -> Tuple[str, List[Path]]:
    """("pickle", [file]) or ("npz", [split files..., classes.txt]) of `name` under the root."""
    given = user_root(name, data_root, layout(name))
    s = SPECS[name]
    folders = [given / f for f in s.folders] + [given]
    for folder in folders:
        for f in ((file,) if file else s.pickles):
            if (folder / f).is_file():
                return "pickle", [folder / f]
        if s.modalities and not file and (folder / "train.npz").is_file():
            files = [folder / f"{sp}.npz" for sp in SPLITS if (folder / f"{sp}.npz").is_file()]
            for need in (folder / "test.npz", folder / "classes.txt"):
                if not need.is_file():
                    raise FileNotFoundError(f"{need} is missing: {name} expects {layout(name)}")
            return "npz", files + [folder / "classes.txt"]
    first = folders[0] / (file or (s.pickles[0] if s.pickles else "train.npz"))
    raise FileNotFoundError(f"no {name} under {given}: expected {layout(name)} (first missing: {first})")


def _load_pickle(path: Path):
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except Exception as e:
        raise DataFormatError(f"{path}: not a readable pickle ({type(e).__name__}: {e})") from None


def _clean(a, path: Path, what: str, ndim: int) -> np.ndarray:
    try:
        a = np.asarray(a, dtype=np.float32)
    except Exception as e:
        raise DataFormatError(f"{path}: {what} is not a numeric array ({type(e).__name__}: {e})") from None
    expect(a.ndim == ndim, path, f"{what} of {ndim} dimensions, got shape {a.shape}")
    return np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)


def _fit_len(a: np.ndarray, t: int) -> np.ndarray:
    """Cut or zero-pad the time axis (1) of [N, T, D] to t steps."""
    if a.shape[1] >= t:
        return a[:, :t]
    return np.concatenate([a, np.zeros((a.shape[0], t - a.shape[1], a.shape[2]), a.dtype)], axis=1)


def _split_dict(data, path: Path, split: str):
    keys = PICKLE_SPLITS[split]
    found = [k for k in keys if isinstance(data, dict) and k in data]
    if not found:
        expect(split == "val", path, f"a dict with a {keys[0]!r} split (keys train, valid, test)")
        return None
    expect(isinstance(data[found[0]], dict), path, f"{found[0]!r} to be a dict of arrays")
    return data[found[0]]


def read_sentiment(path: Path) -> dict:
    """An MMSA or MultiBench pickle -> {"x", "y" (scores), "split", "groups", "classes"}."""
    data = _load_pickle(path)
    xs, ys, split_ids, lengths = {m: [] for m in ("text", "audio", "visual")}, [], [], {}
    for i, split in enumerate(SPLITS):
        part = _split_dict(data, path, split)
        if part is None:
            continue
        label_key = "regression_labels" if "regression_labels" in part else "labels"
        for key in ("text", "audio", "vision", label_key):
            expect(key in part, path, f"{split} to hold arrays text, audio, vision and regression_labels "
                                      f"(MMSA) or labels (MultiBench); {key!r} is missing")
        y = _clean(part[label_key], path, f"{split}/{label_key}", np.ndim(part[label_key])).reshape(-1)
        for m, key in (("text", "text"), ("audio", "audio"), ("visual", "vision")):
            a = _clean(part[key], path, f"{split}/{key} [N, T, D]", 3)
            expect(len(a) == len(y), path, f"{split}/{key} with one row per label ({len(y)}), got {len(a)}")
            a = _fit_len(a, lengths.setdefault(m, a.shape[1]))
            expect(a.shape[2] == (xs[m][0].shape[2] if xs[m] else a.shape[2]), path,
                   f"{split}/{key} with the same feature size in every split")
            xs[m].append(a)
        ys.append(y)
        split_ids.append(np.full(len(y), i))
    return {"x": {m: torch.from_numpy(np.concatenate(v)) for m, v in xs.items()},
            "y": torch.from_numpy(np.concatenate(ys)), "split": torch.from_numpy(np.concatenate(split_ids)),
            "groups": torch.full((sum(map(len, ys)),), -1, dtype=torch.long), "classes": []}


def read_iemocap_pickle(path: Path) -> dict:
    """DialogueRNN's IEMOCAP_features.pkl -> utterance-level tensors (6 classes, groups = dialogue)."""
    data = _load_pickle(path)
    what = ("a sequence of 9: videoIDs, videoSpeakers, videoLabels, videoText, videoAudio, videoVisual, "
            "videoSentence, trainVid, testVid")
    expect(isinstance(data, (list, tuple)) and len(data) >= 9, path, what)
    _, _, labels, text, audio, visual, _, train_vid, test_vid = data[:9]
    x, y, split, groups = {"text": [], "audio": [], "visual": []}, [], [], []
    for g, (vid, s) in enumerate([(v, 0) for v in sorted(train_vid)] + [(v, 2) for v in sorted(test_vid)]):
        try:
            parts = {"text": text[vid], "audio": audio[vid], "visual": visual[vid]}
            lab = np.asarray(labels[vid], dtype=np.int64).reshape(-1)
        except (KeyError, TypeError, ValueError) as e:
            raise DataFormatError(f"{path}: malformed data file, expected {what} (dialogue {vid!r}: {e})") from None
        for m, a in parts.items():
            a = _clean(a, path, f"{m} of dialogue {vid!r} [utterances, D]", 2)
            expect(len(a) == len(lab), path, f"{m} of dialogue {vid!r} with one row per label")
            x[m].append(a)
        y.append(lab)
        split.append(np.full(len(lab), s))
        groups.append(np.full(len(lab), g))
    y = np.concatenate(y)
    expect(len(y) > 0 and y.min() >= 0 and y.max() < len(IEMOCAP6), path, f"labels in 0..{len(IEMOCAP6) - 1}")
    return {"x": {m: torch.from_numpy(np.concatenate(v)) for m, v in x.items()}, "y": torch.from_numpy(y),
            "split": torch.from_numpy(np.concatenate(split)), "groups": torch.from_numpy(np.concatenate(groups)),
            "classes": list(IEMOCAP6)}


def read_npz(name: str, files: List[Path]) -> dict:
    """The npz layout -> {"x", "y", "split", "groups", "classes"}."""
    spec, npzs, classes_file = SPECS[name], files[:-1], files[-1]
    try:
        classes = [c.strip() for c in classes_file.read_text().splitlines() if c.strip()]
    except UnicodeDecodeError as e:
        raise DataFormatError(f"{classes_file}: expected the class names as text, one a line ({e})") from None
    expect(len(classes) == spec.n_classes, classes_file, f"{spec.n_classes} class names (one a line) for {name}, "
                                                        f"got {len(classes)}")
    x, y, split = {m: [] for m in spec.modalities}, [], []
    for path in npzs:
        try:
            z = dict(np.load(path, allow_pickle=False))
        except Exception as e:
            raise DataFormatError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from None
        for key in spec.modalities + ("label",):
            expect(key in z, path, f"arrays {', '.join(spec.modalities)} and label ({key!r} is missing)")
        lab = np.asarray(z["label"]).reshape(-1)
        expect(np.issubdtype(lab.dtype, np.integer) and len(lab) > 0 and lab.min() >= 0 and lab.max() < len(classes),
               path, f"label [N] of integers in 0..{len(classes) - 1} (classes.txt)")
        for m in spec.modalities:
            a = _clean(z[m], path, f"{m} [N, D] or [N, T, D]", np.ndim(z[m]))
            expect(a.ndim in (2, 3) and len(a) == len(lab), path, f"{m} [N, D] or [N, T, D] with N = {len(lab)} "
                                                                  f"labels, got shape {a.shape}")
            expect(not x[m] or x[m][0].shape[1:] == a.shape[1:], path, f"{m} of the same shape in every split")
            x[m].append(a)
        y.append(lab.astype(np.int64))
        split.append(np.full(len(lab), SPLITS.index(path.stem)))
    n = sum(map(len, y))
    return {"x": {m: torch.from_numpy(np.concatenate(v)) for m, v in x.items()},
            "y": torch.from_numpy(np.concatenate(y)), "split": torch.from_numpy(np.concatenate(split)),
            "groups": torch.full((n,), -1, dtype=torch.long), "classes": classes}


def _read(name: str, kind: str, files: List[Path]) -> dict:
    if kind == "npz":
        return read_npz(name, files)
    return read_iemocap_pickle(files[0]) if name == "iemocap" else read_sentiment(files[0])


def prepare(data_root: Optional[str] = None, dataset: Optional[str] = None, progress: bool = False,
            file: Optional[str] = None) -> dict:
    """The dataset's tensors, parsed once and cached ({"x", "y", "split" 0/1/2, "groups", "classes"}).
    dataset=None: the one set found under the root (several found -> name one with dataset=)."""
    name = dataset or _the_one_found(data_root)
    if name not in SPECS:
        raise ValueError(f"features: unknown dataset {name!r}; one of {sorted(SPECS)}")
    kind, files = find_source(name, data_root, file)
    opts = {"kind": kind, "content": content_hash(files)}
    return cached_prepare(name, opts, lambda: _read(name, kind, files))


def _the_one_found(data_root: Optional[str]) -> str:
    found = []
    for name in SPECS:
        try:
            find_source(name, data_root)
            found.append(name)
        except FileNotFoundError as e:
            if "MMLAB_DATA" in str(e):
                raise FileNotFoundError(f"the feature datasets read a copy you supply: pass data_root=DIR or set "
                                        f"MMLAB_DATA=DIR, DIR holding {LAYOUT}") from None
    if len(found) != 1:
        raise ValueError(f"features: {'several' if found else 'no'} feature datasets under {data_root}: "
                         f"{found or LAYOUT}; name one with dataset=NAME (--data-opt dataset=NAME)")
    return found[0]


def _labels(name: str, d: dict, classes: Optional[int]) -> Tuple[torch.Tensor, List[str], torch.Tensor]:
    """(int64 labels, class names, keep mask) for the requested class set."""
    y = d["y"]
    if name in SENTIMENT:
        lab = (y >= 0).long() if classes == 2 else torch.sign(y).long() + 1
        return lab, list(SENTIMENT_CLASSES[classes]), torch.ones(len(y), dtype=torch.bool)
    if name == "iemocap" and d["classes"] == list(IEMOCAP6) and classes == 4:
        mapped = torch.tensor([IEMOCAP6_TO_4.get(int(v), -1) for v in y], dtype=torch.long)
        return mapped, list(IEMOCAP4), mapped >= 0
    if classes is not None and classes != len(d["classes"]):
        raise ValueError(f"{name}: classes={classes} but the data has {len(d['classes'])} classes "
                         f"({d['classes']}); pass classes={len(d['classes'])}")
    return y.long(), list(d["classes"]), torch.ones(len(y), dtype=torch.bool)


def _splits(name: str, full: MMData, split: torch.Tensor, seed: int, val_fraction: float):
    train = full.subset(torch.nonzero(split == 0).flatten())
    test = full.subset(torch.nonzero(split == 2).flatten())
    if (split == 1).any():
        return train, full.subset(torch.nonzero(split == 1).flatten()), test
    if bool((train.groups >= 0).all()):                   # IEMOCAP pickle: whole dialogues
        return (*group_val_split(train, val_fraction, seed), test)
    return (*stratified_val_split(train, val_fraction, seed), test)


def load(name: str, seed: int, val_fraction: float, data_root: Optional[str], classes: Optional[int],
         pool: str = "none", file: Optional[str] = None) -> Splits:
    """Build `name`'s Splits (the registered builders below call this)."""
    if pool not in ("none", "mean"):
        raise ValueError(f"{name}: pool must be 'none' ([T, D] sequences) or 'mean' (ReconBoost: audio and "
                         f"visual averaged over time), got {pool!r}")
    d = prepare(data_root, name, file=file)
    y, class_names, keep = _labels(name, d, classes)
    x = {m: (t.mean(1) if pool == "mean" and m in ("audio", "visual") and t.ndim == 3 else t)
         for m, t in d["x"].items()}
    idx = torch.nonzero(keep).flatten()
    full = MMData({m: t[idx] for m, t in x.items()}, y[idx], d["groups"][idx])
    train, val, test = _splits(name, full, d["split"][idx], seed, val_fraction)
    shapes = {m: tuple(t.shape[1:]) for m, t in full.x.items()}
    info = DatasetInfo(
        name=name, modalities=shapes, class_names=class_names,
        encoders={m: ("gru", {"in_channels": s[-1]}) if len(s) == 2 else ("mlp", {"in_dim": s[0]})
                  for m, s in shapes.items()},
        description=f"{name} extracted features (user-supplied), as {SPECS[name].paper} uses them.",
        options=dict(classes=len(class_names), pool=pool, file=file))
    return Splits(train, val, test, info)


def _register(name: str):
    if name in SENTIMENT:
        def build(seed: int = 0, val_fraction: float = 0.1, *, data_root: Optional[str] = None, classes: int = 3,
                  pool: str = "none", file: Optional[str] = None) -> Splits:
            if classes not in SENTIMENT_CLASSES:
                raise ValueError(f"{name}: classes must be 3 (ReconBoost: negative/neutral/positive) or 2 "
                                 f"(negative/non-negative), got {classes!r}")
            return load(name, seed, val_fraction, data_root, classes, pool, file)
    elif name == "iemocap":
        def build(seed: int = 0, val_fraction: float = 0.1, *, data_root: Optional[str] = None,
                  classes: int = 4) -> Splits:
            if classes not in (4, 6):
                raise ValueError(f"iemocap: classes must be 4 (MLA) or 6 (the DialogueRNN pickle's), got {classes!r}")
            return load(name, seed, val_fraction, data_root, classes)
    else:
        def build(seed: int = 0, val_fraction: float = 0.1, *, data_root: Optional[str] = None) -> Splits:
            return load(name, seed, val_fraction, data_root, None)
    build.__name__ = build.__qualname__ = f"build_{name}"
    register_dataset(name)(build)


for _name in SPECS:
    _register(_name)
