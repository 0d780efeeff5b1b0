"""Chapters 00-01: the embedded benchmarks, their calibration to the papers' regime, and
modality imbalance on every benchmark (shared by all paper chapters).

Run:
    make book NB=notebooks/00-benchmarks.ipynb
    make book NB=notebooks/01-modality-imbalance.ipynb
    python -m mmlab.studies calibrate --dataset avmnist --grid

Expected (quick profile, 3 seeds, test accuracy %, measured 2026-12-02 at the commit that
declared these numbers): avmnist audio 71.1, image 58.2, concat 81.1, UME 85.3; mfeat concat
84.2, UME 85.3; watch concat 76.0, UME 79.5; cgm gray alone 90.6, concat 29.0 (README's benchmark
table has every stand-in).
Quick-profile run time (2-core CPU, empty cache, `make book`, two notebooks at a time):
00 103 s, 01 388 s (the whole book of nine chapters 23.1 min).
"""
from __future__ import annotations

from typing import Dict

from mmlab.configs import FAMILY, JOINT_METHODS, Sizes, Specs, StudySpec  # noqa: F401 (FAMILY: for the chapters)

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
IMBALANCE: Dict[str, StudySpec] = Specs({
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
})

# ERL-MR Table 2 (CG-MNIST, USC): the paper's fusion rows -> ours, and the readings of its unnamed
# "Uni-Modal 1 / 2" rows per stand-in: {stand-in: (paper dataset, {reading: {paper row: modality}})}
IMB_ERL_FUSIONS = {"Concatenation": "concat", "Summation": "sum", "Film": "film", "Gated": "gated"}
IMB_ERL_READINGS = {
    "cgm": ("CG-MNIST", {"reading A (Uni-Modal 1 = gray)": {"Uni-Modal 1": "gray", "Uni-Modal 2": "color"},
                         "reading B (Uni-Modal 1 = color)": {"Uni-Modal 1": "color", "Uni-Modal 2": "gray"}}),
    "watch": ("USC", {"": {"Uni-Modal 1": "acc", "Uni-Modal 2": "gyro"}}),
}
# the paper datasets of ReconBoost Table 12 (concat DMC)
IMB_DMC_DATASETS = ("CREMA-D", "AVE", "MOSEI", "MOSI", "CH-SIMS")


def imbalance_results(dataset: str, profile: str, methods=JOINT_METHODS, seeds=None, n_jobs: int = 1,
                      device: str = "auto") -> list:
    """mmlab Results of each modality alone and each joint method with chapter 01's sizes
    (IMBALANCE[dataset] at `profile`; seeds default to the profile's); cached."""
    from mmlab.studies import study_results
    sz = IMBALANCE[dataset].sizes(profile)
    return study_results(dataset, methods=tuple(methods), seeds=seeds or sz.seeds, n_jobs=n_jobs,
                         **sz.run_kwargs(device))
