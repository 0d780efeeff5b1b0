"""Configs as code, with provenance (big_vision style).

Each study names the paper artifact it stands in for, the paper's reported number, the
expected run time on this project's 2-core CPU, and its sizes per profile:
  smoke - seconds per run, exercised by CI (numbers are not meaningful);
  quick - the default book build, a laptop CPU (whole book <= 20 minutes);
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
        return dict(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, device=device,
                    dataset_options=dict(self.dataset_options), train_subset=self.train_subset,
                    probe_max_train=self.probe_max_train)


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
        "image",  # seen through a window; audio alone is ~97%
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
        "mor",    # the weakest view alone
        {"smoke": 0.3, "quick": 2, "full": 5},
        smoke=Sizes(2, probe_max_train=300), quick=Sizes(20), full=Sizes(60)),
}


# Chapters 40-43 (ReconBoost, ICML 2024). Every method gets the same number of passes over
# the training data (a ReconBoost stage is t1 + t2 of them) and the same optimizer (Adam 1e-3,
# as chapter 01; the paper uses SGD 0.01 for ReconBoost and does not report the baselines').
RECONBOOST: Dict[str, StudySpec] = {
    "avmnist": StudySpec(
        "avmnist", "ReconBoost Tables 1, 3-5, 7-11, 13-16 (CREMA-D / AVE audio-visual)",
        "ReconBoost 79.82 vs concat 59.50 (CREMA-D), 71.35 vs 62.68 (AVE), Table 1",
        "image",
        {"smoke": 3, "quick": 20, "full": 240},
        smoke=Sizes(2, seeds=(0, 1, 2), train_subset=240, probe_max_train=240),
        quick=Sizes(8), full=Sizes(100)),
    "mfeat": StudySpec(
        "mfeat", "ReconBoost Table 2, Table 12, Fig. 7 (three-modality MOSEI / MOSI / CH-SIMS)",
        "ReconBoost 68.61 vs concat 66.71 (MOSEI), Table 2",
        "mor",
        {"smoke": 1, "quick": 4, "full": 15},
        smoke=Sizes(2, probe_max_train=300), quick=Sizes(20), full=Sizes(60)),
}

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
