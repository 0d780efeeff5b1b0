"""Configs as code, with provenance (big_vision style).

Each study names the paper artifact it stands in for, the paper's reported number, the
expected run time on this project's 2-core CPU, and its sizes per profile (the datasets
are built with their calibrated default constructions, mmlab.data.<name>.VARIANTS; the
"easy" variants of the first ReconBoost round are reachable with dataset option
variant="easy"):
  smoke - seconds per run, exercised by CI (numbers are not meaningful);
  quick - the default book build, a laptop CPU (whole book <= 30 minutes);
  full  - paper-scale epochs and data, meant for a GPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

PROFILES = ("smoke", "quick", "full")
JOINT_METHODS = ("concat", "sum", "film", "gated", "late")


@dataclass(frozen=True)
class Sizes:
    epochs: int
    seeds: Tuple[int, ...] = (0, 1, 2)
    dataset_options: Dict = field(default_factory=dict)
    batch_size: int = 64
    lr: float = 1e-3
    train_subset: Optional[int] = None     # stratified subsample of train (smoke)
    probe_max_train: Optional[int] = 10000

    def run_kwargs(self, device: str = "auto") -> dict:
        # nonfinite="stop": a run whose objective diverges (ReconBoost's unbounded KL form) is
        # reported at its validation-selected epoch before the divergence, with Result.stopped set
        return dict(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, device=device,
                    dataset_options=dict(self.dataset_options), train_subset=self.train_subset,
                    probe_max_train=self.probe_max_train, nonfinite="stop")


@dataclass(frozen=True)
class StudySpec:
    dataset: str
    stands_in_for: str              # the paper artifact and dataset this study mirrors
    reported: str                   # the paper's number(s), as printed
    dominated: str                  # the modality joint training is expected to starve (by construction)
    minutes: Dict[str, float]       # expected wall minutes of the whole study, 2-core CPU
    smoke: Sizes
    quick: Sizes
    full: Sizes

    def sizes(self, profile: str) -> Sizes:
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; use one of {PROFILES}")
        return getattr(self, profile)


# The papers' datasets each stand-in represents. A claim is tested on a stand-in only where
# the paper's own numbers show it on the datasets of this family (mmlab.papers.comparison).
FAMILY: Dict[str, Tuple[str, ...]] = {
    "cgm": ("CG-MNIST",),
    "avmnist": ("CREMA-D", "AVE", "Kinetics-Sounds"),       # audio-visual
    "watch": ("USC", "MHAD"),                               # inertial (accelerometer + gyroscope)
    "mfeat": ("MOSEI", "MOSI", "CH-SIMS", "IEMOCAP"),       # three modalities
}

# The papers' own regime per family, for chapter 00's calibration table:
# (table, paper dataset, {role: paper method}), column "Acc".
PAPER_REGIME = {
    "avmnist": [("reconboost-table1", ds, {"strong alone": "AudioNet", "weak alone": "VisualNet",
                                           "concat": "Concat Fusion", "UME": "UME"}) for ds in ("CREMA-D", "AVE")],
    "watch": [("erl-mr-table2", ds, {"strong alone": "Uni-Modal 1", "weak alone": "Uni-Modal 2",
                                     "concat": "Concatenation"}) for ds in ("USC", "MHAD")],
    "mfeat": [("reconboost-table2", ds, {"strong alone": "TextNet", "medium alone": "AudioNet",
                                         "weak alone": "VisualNet", "concat": "Concat Fusion", "UME": "UME"})
              for ds in ("MOSEI", "MOSI", "CH-SIMS")],
}
CALIBRATED = ("avmnist", "watch", "mfeat")    # the stand-ins calibrated to the papers' regime

# Chapter 01's claims, and the paper tables that show them for a family:
# the weak modality's encoder under concat probes below the unimodal one (ReconBoost Table 5
# for the audio-visual sets, Table 12's concat-fusion probes for the three-modality ones),
# (table, unimodal row, concat row, the weak modality's column)
IMB_PROBE_TABLES = {"avmnist": ("reconboost-table5", "Uni-train", "Concat Fusion", "Visual"),
                    "mfeat": ("reconboost-table12", "Uni-modal", "Concat Fusion", "Visual")}
# each joint model's own accuracy on the weak modality below late fusion's (MLA Table 1:
# CREMA-D / Kinetics-Sounds video, IEMOCAP image); our rows -> MLA's row names
IMB_USED_TABLE = "mla-table1"
IMB_USED_NAMES = {"concat": "Concat", "sum": "Sum", "film": "FiLM", "gated": "BiGated"}
IMB_USED_WEAK = {"avmnist": "Video", "mfeat": "Image"}
# CG-MNIST: every joint fusion below the better modality alone (ERL-MR Table 2)
IMB_CGM_NAMES = {"concat": "Concatenation", "sum": "Summation", "film": "Film", "gated": "Gated"}

# Chapter 01 (modality imbalance on every embedded benchmark), unimodal + 5 joint methods.
IMBALANCE: Dict[str, StudySpec] = {
    "cgm": StudySpec(
        "cgm", "ERL-MR Tables 2-3 (CG-MNIST)",
        "uni-modal 1: 99.3, uni-modal 2: 60.4, concat 58.4 (ERL-MR Table 2, CGM; the paper does not name the modalities)",
        "gray",   # colour is the training-only shortcut, so gray is starved
        {"smoke": 0.7, "quick": 5, "full": 60},
        smoke=Sizes(1, dataset_options={"n_train": 600, "n_test": 300}, probe_max_train=300),
        quick=Sizes(4, dataset_options={"n_train": 3000, "n_test": 2000}),
        full=Sizes(30)),
    "avmnist": StudySpec(
        "avmnist", "ReconBoost Tables 5 and 11 (CREMA-D / AVE audio-visual)",
        "concat visual probe 26.81 vs uni-train 50.14, DMC 1.81 (CREMA-D)",
        "image",  # seen through a 12x12 window (62 % alone); the noisy audio is the stronger one (74 %)
        {"smoke": 0.5, "quick": 3, "full": 20},
        smoke=Sizes(1, train_subset=300, probe_max_train=300), quick=Sizes(6), full=Sizes(40)),
    "watch": StudySpec(
        "watch", "MLA / ERL-MR IMU benchmarks (USC-HAD, MHAD: accelerometer + gyroscope)",
        "ERL-MR Table 2 USC: uni-modal 56.0 / 46.0, concat 61.0",
        "gyro",   # the weaker IMU modality alone
        {"smoke": 0.5, "quick": 3, "full": 20},
        smoke=Sizes(1, train_subset=300, probe_max_train=300), quick=Sizes(6), full=Sizes(40)),
    "mfeat": StudySpec(
        "mfeat", "ReconBoost Table 12 (three-modality benchmarks: MOSEI / MOSI / CH-SIMS)",
        "concat DMC 1.01-1.03 on the three-modality sets",
        "mor",    # the weakest view alone (69 % with 20 digits per class)
        {"smoke": 0.3, "quick": 2, "full": 5},
        smoke=Sizes(2, probe_max_train=300), quick=Sizes(20), full=Sizes(60)),
}


@dataclass(frozen=True)
class Recipe:
    """How a method is trained under a protocol: optimizer settings, method options, source."""
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    method_options: Dict = field(default_factory=dict)
    source: str = ""

    def run_kwargs(self) -> dict:
        return dict(optimizer=self.optimizer, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)


@dataclass(frozen=True)
class Protocol:
    """A training protocol of a paper's chapters: passes per run (sizes per dataset and
    profile) and a recipe per method (`recipes[dataset][method]`, "*" = every other method)."""
    name: str                                   # short id used in claim ids and frames
    label: str
    description: str
    specs: Dict[str, StudySpec]
    recipes: Dict[str, Dict[str, Recipe]]

    def recipe(self, dataset: str, method: str) -> Recipe:
        r = self.recipes[dataset]
        return r.get(method, r["*"])

    def describe(self, dataset: str, methods) -> "pd.DataFrame":
        """One row per method: the optimizer settings, extra options and source of its recipe."""
        import pandas as pd
        rows = {}
        for m in methods:
            r = self.recipe(dataset, m)
            rows[m] = {"optimizer": r.optimizer, "lr": r.lr, "momentum": r.momentum if r.optimizer == "sgd" else "—",
                       "weight decay": r.weight_decay, "options": ", ".join(f"{k}={v}" for k, v in r.method_options.items())
                       or "—", "source": r.source}
        return pd.DataFrame.from_dict(rows, orient="index")


# Chapters 40-43 (ReconBoost, ICML 2024) run every artifact under two protocols.
# "equal": every method the same passes over the training data (a ReconBoost stage is
# t1 + t2 of them, t1 = t2 = 1) and the same optimizer (Adam 1e-3, as chapter 01, whose
# concat / unimodal runs it shares: same epochs).
# "paper": each method with the recipe its own paper (or its authors' code) states, every
# method the same number of passes, scaled to the profile by the number of ReconBoost
# stages (never by cutting the paper's passes per stage).
RB_SPECS_EQUAL: Dict[str, StudySpec] = {
    "avmnist": StudySpec(
        "avmnist", "ReconBoost Tables 1, 3-5, 7-11, 13-16 (CREMA-D / AVE audio-visual)",
        "ReconBoost 79.82 vs concat 59.50 (CREMA-D), 71.35 vs 62.68 (AVE), Table 1",
        "image",
        {"smoke": 2, "quick": 15, "full": 240},
        smoke=Sizes(2, seeds=(0, 1), train_subset=240, probe_max_train=240),
        quick=Sizes(6), full=Sizes(100)),
    "mfeat": StudySpec(
        "mfeat", "ReconBoost Table 2, Table 12, Fig. 7 (three-modality MOSEI / MOSI / CH-SIMS)",
        "ReconBoost 68.61 vs concat 66.71 (MOSEI), Table 2",
        "mor",
        {"smoke": 1, "quick": 2, "full": 15},
        smoke=Sizes(2, seeds=(0, 1), probe_max_train=300), quick=Sizes(20), full=Sizes(60)),
}
RB_SPECS_PAPER: Dict[str, StudySpec] = {
    # CREMA-D / AVE recipe: T1 = T2 = 4 passes per stage; quick = 4 stages (32 passes), smoke 1
    "avmnist": StudySpec(
        "avmnist", RB_SPECS_EQUAL["avmnist"].stands_in_for, RB_SPECS_EQUAL["avmnist"].reported, "image",
        {"smoke": 2, "quick": 45, "full": 900},
        smoke=Sizes(8, seeds=(0, 1), train_subset=240, probe_max_train=240),
        quick=Sizes(32), full=Sizes(400)),
    # MOSEI / MOSI / CH-SIMS recipe: T1 = T2 = 1; quick = 20 stages (40 passes)
    "mfeat": StudySpec(
        "mfeat", RB_SPECS_EQUAL["mfeat"].stands_in_for, RB_SPECS_EQUAL["mfeat"].reported, "mor",
        {"smoke": 1, "quick": 3, "full": 20},
        smoke=Sizes(4, seeds=(0, 1), probe_max_train=300), quick=Sizes(40), full=Sizes(200)),
}
_RB_SGD = dict(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4)
_RB_SRC = "ReconBoost App. C.3.2: SGD, lr 0.01 (momentum 0.9, weight decay 5e-4: the authors' code)"
_OGM_SRC = ("OGM-GE authors' code (GeWu-Lab/OGM-GE_CVPR2022 main.py): SGD lr 1e-3, momentum 0.9, weight decay "
            "1e-4, batch 64 (its lr x0.1 at epoch 70 lies beyond the quick budget)")
_PMR_SRC = ("PMR authors' code (fanyunfeng-bit/Modal-Imbalance-PMR): SGD momentum 0.9, weight decay 1e-4, "
            "lr 1e-3 in its run scripts, batch 64")


def _paper_recipes(t: int, decay: dict) -> Dict[str, Recipe]:
    """Per-method recipes under the paper protocol; t = ReconBoost's T1 = T2 of the family,
    decay its lr schedule over stages (App. C.3.2)."""
    sched = f"; lr x{decay['lr_decay']} every {decay['lr_decay_every']} stages" if decay else "; constant lr"
    rb = Recipe(**_RB_SGD, method_options={"t1": t, "t2": t, **decay}, source=f"{_RB_SRC}; T1 = T2 = {t}{sched}")
    ogm = Recipe("sgd", 1e-3, 0.9, 1e-4, source=_OGM_SRC)
    pmr = Recipe("sgd", 1e-3, 0.9, 1e-4, source=_PMR_SRC)
    other = Recipe(**_RB_SGD, source=f"{_RB_SRC}, as the ReconBoost paper trains its competitors (their own "
                                     "papers' recipes were not available here)")
    return {"reconboost": rb, "ogm_ge": ogm, "pmr": pmr, "*": other}


RB_PROTOCOLS: Dict[str, Protocol] = {
    "equal": Protocol(
        "equal", "equal budget",
        "every method the same passes over train and the same optimizer (Adam, lr 1e-3); ReconBoost "
        "t1 = t2 = 1 pass per stage",
        RB_SPECS_EQUAL, {d: {"*": Recipe(source="Adam 1e-3 for every method (chapter 01's setting)")}
                         for d in RB_SPECS_EQUAL}),
    "paper": Protocol(
        "paper", "paper recipe",
        "each method with its own paper's (or authors' code's) optimizer; ReconBoost SGD 0.01 with "
        "T1 = T2 = 4 (audio-visual) or 1 (three-modality) passes per stage; every method the same passes",
        RB_SPECS_PAPER, {"avmnist": _paper_recipes(4, {"lr_decay": 0.1, "lr_decay_every": 30}),   # CREMA-D's
                         "mfeat": _paper_recipes(1, {})}),
}
RECONBOOST = RB_SPECS_EQUAL     # the equal-budget specs (stands-in-for, reported, dominated modality)

# Paper tables of overall accuracy per stand-in, and the paper's names of our rows.
RB_TABLES = {"avmnist": "reconboost-table1", "mfeat": "reconboost-table2"}
RB_PAPER_NAMES = {"concat": "Concat Fusion", "G-Blending": "G-Blending", "OGM-GE": "OGM-GE", "PMR": "PMR",
                  "UME": "UME", "UMT": "UMT"}
# the paper's unimodal networks matched to our modalities by rank of unimodal strength
RB_VIEWS = {"avmnist": {"AudioNet": "audio", "VisualNet": "image"},
            "mfeat": {"TextNet": "zer", "AudioNet": "fou", "VisualNet": "mor"}}

# label -> (registered method, method options); ReconBoost Table 1 / 2 rows.
RB_MAIN: Dict[str, Tuple[str, dict]] = {
    "concat": ("concat", {}),
    "G-Blending": ("gblend", {}),
    "OGM-GE": ("ogm_ge", {}),
    "PMR": ("pmr", {}),
    "UME": ("ume", {}),
    "UMT": ("umt", {}),
    "ReconBoost (KL, paper)": ("reconboost", {"recon": "paper"}),
    "ReconBoost (weighted CE, code)": ("reconboost", {"recon": "code"}),
}
RB_FORMS = ("ReconBoost (KL, paper)", "ReconBoost (weighted CE, code)")


def rb_fusion_variants(rb_options: dict) -> Dict[str, Tuple[str, dict]]:
    """Table 4 / 14: ReconBoost's final-score rules vs joint methods with MMTM fusion."""
    out = {f"Ours + {r.upper()}": ("reconboost", {**rb_options, "final": r}) for r in ("na", "lw", "tmc", "qmf")}
    out.update({"OGM-GE + MMTM": ("ogm_ge", {"fusion": "mmtm"}), "PMR + MMTM": ("pmr", {"fusion": "mmtm"}),
                "UMT + MMTM": ("umt", {"fusion": "mmtm"})})
    return out


def rb_ablation_variants(rb_options: dict) -> Dict[str, Tuple[str, dict]]:
    """Fig. 7 / Table 16 (lam, alpha), Fig. 8 (GRS), Table 13 (selection order).
    lam only acts in the paper's KL form, so its sweep always uses recon="paper"."""
    kl = {**rb_options, "recon": "paper"}
    out = {f"lam={lam}": ("reconboost", {**kl, "lam": v}) for lam, v in
           (("1/4", 1 / 4), ("1/3", 1 / 3), ("1/2", 1 / 2), ("1", 1.0))}
    out.update({f"alpha={a}": ("reconboost", {**rb_options, "alpha": a}) for a in (0.0, 0.1, 0.5, 1.0)})
    out.update({"w/o GRS": ("reconboost", {**rb_options, "grs": False, "t2": 0}),
                "with GRS": ("reconboost", dict(rb_options)),
                "S1 (lowest loss)": ("reconboost", {**rb_options, "order": "s1"}),
                "S2 (highest loss)": ("reconboost", {**rb_options, "order": "s2"}),
                "fixed (ours)": ("reconboost", dict(rb_options))})
    return out
