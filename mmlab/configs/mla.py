"""Chapters 30-32: MLA, Multimodal Learning with Alternating Unimodal Adaptation (Zhang et al.,
CVPR 2024), under two protocols.

Run:
    make book NB=notebooks/30-mla-accuracy.ipynb     # Tables 1 / 5 (per modality and multimodal), 3 (ablation)
    make book NB=notebooks/31-mla-missing.ipynb      # Tables 2 / 6 (missing rate), Fig. 2 (modality isolation)
    make book NB=notebooks/32-mla-analysis.ipynb     # Fig. 3 (modality gap), Tables 4 / 7 (pretrained encoders)
    python -m mmlab train --dataset mfeat --method mla --epochs 20
    python -m mmlab.bench epoch-time --dataset mfeat --method mla

Protocols. "equal": every method Adam 1e-3 for the passes of chapter 01 (whose concat / sum /
FiLM / gated / late runs, and chapter 40's OGM-GE runs, are reused as they are). "paper": MLA's
recipe for every method (A.3: SGD lr 1e-3, momentum 0.9, batch 64, lr x0.1 at step 70 of 100
epochs; weight decay 1e-4 from the authors' code), the paper's 100 epochs. At lr 1e-3 the
audio-visual stand-in does not converge within a quick budget (30 passes: MLA 40.8 %, concat
30.3 %, still climbing; 100 passes cost ~60 s a run), so the quick profile runs the paper
recipe on mfeat only (100 epochs, under 2 s a run) and the full profile on both.

Expected (quick profile, 3 seeds, test %, measured 2026-12-02): avmnist equal budget MLA 84.4,
concat 81.1, QMF 84.0, late 79.6; mfeat equal budget MLA 84.8, concat 84.2, QMF 86.4; mfeat
paper recipe MLA 73.0, concat 74.5, QMF 81.5. Quick run time (2-core CPU, empty cache, `make
book`, two notebooks at a time): 30 165 s, 31 125 s, 32 38 s (the whole book 23.1 min).
"""
from __future__ import annotations

from typing import Dict, Tuple

from mmlab.configs import FAMILY, check_chapter_datasets, PaperScale, Protocol, Recipe, Sizes, Specs, StudySpec, equal_protocol  # noqa: F401
from mmlab.configs.imbalance import IMBALANCE

# --- protocols ----------------------------------------------------------------------------
MLA_SPECS_EQUAL: Dict[str, StudySpec] = {
    n: StudySpec(n, f"MLA Tables 1 / 5 ({fam})", reported, IMBALANCE[n].dominated,
                 {"smoke": 0.5, "quick": 2, "full": 30},
                 smoke=IMBALANCE[n].smoke, quick=IMBALANCE[n].quick, full=IMBALANCE[n].full)
    for n, fam, reported in (
        ("avmnist", "CREMA-D / Kinetics-Sounds audio-video", "MLA 79.70 vs concat 61.56 (CREMA-D), 71.35 vs 64.84 (KS)"),
        ("mfeat", "IEMOCAP audio-image-text", "MLA 78.92 vs concat 75.91 (IEMOCAP)"))}
MLA_SPECS_PAPER: Dict[str, StudySpec] = {
    "avmnist": StudySpec("avmnist", MLA_SPECS_EQUAL["avmnist"].stands_in_for, MLA_SPECS_EQUAL["avmnist"].reported,
                         "image", {"smoke": 1, "quick": 25, "full": 300},
                         smoke=Sizes(2, seeds=(0, 1), train_subset=240, probe_max_train=240),
                         quick=Sizes(100), full=Sizes(100)),
    "mfeat": StudySpec("mfeat", MLA_SPECS_EQUAL["mfeat"].stands_in_for, MLA_SPECS_EQUAL["mfeat"].reported,
                       "mor", {"smoke": 0.3, "quick": 1, "full": 2},
                       smoke=Sizes(4, seeds=(0, 1), probe_max_train=300), quick=Sizes(100), full=Sizes(100)),
}
_MLA_SRC = ("MLA App. A.3: SGD lr 1e-3, momentum 0.9, batch 64, lr x0.1 at regular intervals (StepLR(70, 0.1) "
            "over 100 epochs and weight decay 1e-4 in the authors' code), for every method")
# the full profile on MLA's own datasets (read from your copy): App. A.3, every method the same
_MLA_RECIPE = Recipe("sgd", 1e-3, 0.9, 1e-4, source=_MLA_SRC, lr_step=70)
MLA_PAPER_SCALE = {
    "cremad": PaperScale("cremad", "CREMA-D", "ResNet-18 audio + visual (MLA: fbank audio, 3 frames)", 100, 64,
                         _MLA_RECIPE, 6698, resnet_inputs=4.0),
    "kinetics_sounds": PaperScale("kinetics_sounds", "Kinetics-Sounds", "ResNet-18 audio + visual (3 frames)",
                                  100, 64, _MLA_RECIPE, 14799, resnet_inputs=6.2),
    **{n: PaperScale(n, d, "pre-extracted M3AE (+ CAV-MAE audio) features, FC shared head", 100, 64, _MLA_RECIPE,
                     size) for n, d, size in (("food101", "Food-101", 67988), ("mvsa", "MVSA", 3611),
                                              ("iemocap", "IEMOCAP", 5810))},
}
MLA_SPECS_EQUAL = Specs(MLA_SPECS_EQUAL, scale=MLA_PAPER_SCALE)
MLA_SPECS_PAPER = Specs(MLA_SPECS_PAPER, scale=MLA_PAPER_SCALE)
MLA_PROTOCOLS: Dict[str, Protocol] = {
    "equal": equal_protocol(MLA_SPECS_EQUAL),
    "paper": Protocol("paper", "paper recipe",
                      "MLA's recipe for every method: SGD 1e-3, momentum 0.9, weight decay 1e-4, lr x0.1 at "
                      "epoch 70 of 100", MLA_SPECS_PAPER,
                      {n: {"*": Recipe("sgd", 1e-3, 0.9, 1e-4, source=_MLA_SRC, lr_step=70)} for n in MLA_SPECS_PAPER}),
}
# the datasets each protocol runs on, per profile (the paper recipe's 100 epochs on avmnist: full only)
MLA_DATASETS = {"equal": {"smoke": ("avmnist", "mfeat"), "quick": ("avmnist", "mfeat"), "full": ("avmnist", "mfeat")},
                "paper": {"smoke": ("mfeat",), "quick": ("mfeat",), "full": ("avmnist", "mfeat")}}

# --- Table 1 / 5 rows: label -> (registered method, options) ---------------------------------
# "BiGated" as MLA describes it (App. A.2): one modality's hidden state gates the other's (gate="one")
MLA_MAIN: Dict[str, Tuple[str, dict]] = {
    "sum": ("sum", {}), "concat": ("concat", {}), "late": ("late", {}), "film": ("film", {}),
    "BiGated (one-way gate)": ("gated", {"fusion_options": {"gate": "one"}}), "OGM-GE": ("ogm_ge", {}),
    "QMF": ("qmf", {}), "MLA": ("mla", {}),
}
MLA_PAPER_NAMES = {"Sum": "sum", "Concat": "concat", "Late Fusion": "late", "FiLM": "film",
                   "BiGated": "BiGated (one-way gate)", "OGM-GE": "OGM-GE", "QMF": "QMF", "MLA": "MLA"}
# the paper's modality columns -> ours, by the stand-in's modalities (strong first, as the papers')
MLA_COLUMNS = {"avmnist": {"Audio": "audio", "Video": "image"},
               "mfeat": {"Text": "zer", "Audio": "fou", "Image": "mor"}}
MLA_TABLES = {"avmnist": ("CREMA-D", "Kinetics-Sounds"), "mfeat": ("IEMOCAP",)}

# the authors' code and a popular toolkit, run beside the paper's form
MLA_CODE_FORMS: Dict[str, Tuple[str, dict]] = {
    "MLA": ("mla", {}),
    "MLA, projection never applied (official code)": ("mla", {"projection": "never"}),
    "MLA, projection added (toolkit)": ("mla", {"projection": "add"}),
    "MLA, one fusion weight per batch (official code)": ("mla", {"fusion_scope": "batch"}),
}
# Table 3: head gradient modification x dynamic fusion
MLA_ABLATION: Dict[str, Tuple[str, dict]] = {
    "HGM off, DF off": ("mla", {"projection": "never", "fusion_rule": "mean"}),
    "HGM off, DF on": ("mla", {"projection": "never"}),
    "HGM on, DF off": ("mla", {"fusion_rule": "mean"}),
    "HGM on, DF on": ("mla", {}),
}

# --- Table 2 / 6: missing modalities (the three-modality stand-in, IEMOCAP's family) ------------
MLA_MISSING_DATASET = "mfeat"
MLA_MISSING_RATES = {"smoke": (0.1, 0.5), "quick": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
                     "full": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)}
MLA_MISSING_METHODS = {"MLA": "mla", "Late Fusion": "late", "QMF": "qmf", "AE": "ae", "MMIN": "mmin"}


def missing_variants(profile: str) -> Dict[str, Tuple[str, dict, dict]]:
    """Table 2's rows x missing rates: label "<method> @ <rate>" -> (method, {}, {missing_rate})."""
    return {f"{label} @ {eta}": (m, {}, {"missing_rate": eta, "probe": False})
            for label, m in MLA_MISSING_METHODS.items() for eta in MLA_MISSING_RATES[profile]}


# --- Fig. 2: modality isolation (the audio-visual stand-in, KS's family) -------------------------
MLA_ISOLATION_DATASET = "avmnist"
MLA_ISOLATION_RATIOS = {"smoke": (0.0, 1.0), "quick": (0.0, 0.5, 1.0), "full": (0.0, 0.25, 0.5, 0.75, 1.0)}
MLA_ISOLATION_METHODS = {"MLA": "mla", "QMF": "qmf"}


def isolation_variants(profile: str, modalities=("audio", "image")) -> Dict[str, Tuple[str, dict, dict]]:
    """Fig. 2: label "<method>, <m> <ratio>" -> (method, {}, {train_missing: {m: ratio}}); ratio 0
    is one run per method (the complete training data: chapter 30's run, probes included)."""
    out = {}
    for label, m in MLA_ISOLATION_METHODS.items():
        out[f"{label}, none 0.0"] = (m, {}, {})
        for mod in modalities:
            for r in MLA_ISOLATION_RATIOS[profile]:
                if r > 0:
                    out[f"{label}, {mod} {r}"] = (m, {}, {"train_missing": {mod: r}, "probe": False})
    return out


def study(dataset: str, profile: str, variants, protocol: str = "equal", seeds=None, n_jobs: int = 1,
          device: str = "auto", with_unimodal: bool = True):
    """mmlab.studies.protocol_study with the MLA chapters' sizes and recipes of one protocol."""
    from mmlab.studies import protocol_study
    return protocol_study(MLA_PROTOCOLS[protocol], dataset, profile, variants, seeds=seeds, n_jobs=n_jobs,
                          device=device, with_unimodal=with_unimodal)


def main_studies(profile: str, datasets=None, protocols=None, seeds=None, n_jobs: int = 1,
                 device: str = "auto") -> Dict[tuple, tuple]:
    """Table 1 / 5 rows plus the code forms and the Table 3 ablation, per (dataset, protocol) the
    profile runs: {(dataset, protocol): (imbalance frame, [(label, RunConfig, Result)])}."""
    check_chapter_datasets(datasets, MLA_SPECS_EQUAL, "MLA chapters 30-32")
    out = {}
    for p in protocols or MLA_PROTOCOLS:
        for n in MLA_DATASETS[p][profile]:
            if datasets is None or n in datasets:
                out[n, p] = study(n, profile, {**MLA_MAIN, **MLA_CODE_FORMS, **MLA_ABLATION}, p, seeds, n_jobs,
                                  device)
    return out


# --- Fig. 3: the modality gap, tracked per epoch (the audio-visual stand-in) ------------------
MLA_GAP_DATASET = "avmnist"
MLA_GAP_VARIANTS: Dict[str, Tuple[str, dict, dict]] = {
    "concat": ("concat", {}, {"track": ("modality_gap",)}),
    "MLA": ("mla", {}, {"track": ("modality_gap",)}),
}

# --- Tables 4 / 7: pretrained encoders (MLA fine-tunes CLIP on Food-101) ------------------------
# The stand-in: every mfeat view's encoder pretrained unimodally on the 140 digits per class the
# benchmark leaves out (mmlab.methods.pretrain), then fine-tuned jointly (concat: the "CLIP" row)
# or by MLA ("CLIP + MLA"). It stands in for CLIP's pretrained encoders, nothing more.
MLA_PRETRAINED_DATASET = "mfeat"
MLA_PRETRAINED: Dict[str, Tuple[str, dict]] = {
    "concat, pretrained encoders": ("concat", {"pretrained": True}),
    "MLA, pretrained encoders": ("mla", {"pretrained": True}),
}
MLA_T4_NAMES = {"CLIP": "concat, pretrained encoders", "CLIP + MLA": "MLA, pretrained encoders"}
MLA_T4_COLUMNS = {"Text": "zer", "Image": "mor"}        # Food-101's strong / weak modality -> ours
