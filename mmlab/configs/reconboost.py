"""Chapters 40-43: ReconBoost (Hua et al., ICML 2024) under two protocols.

Run:
    make book NB=notebooks/40-reconboost-accuracy.ipynb     # Tables 1, 2, 4, 12, 14; Figs. 5b, 6, 11
    make book NB=notebooks/41-reconboost-encoders.ipynb     # Tables 3, 5, 7, 11, 15; Figs. 4, 5a, 12
    make book NB=notebooks/42-reconboost-robustness.ipynb   # Tables 8-10
    make book NB=notebooks/43-reconboost-ablations.ipynb    # Tables 13, 16; Figs. 7-9
(chapter 40 trains the Table 1 / 2 runs that 41-43 reuse from the cache: run it first.)

Expected (quick profile, 3 seeds, test accuracy %, measured 2026-12-02; equal budget / paper
recipe): avmnist concat 81.1 / 76.0, UME 85.3 / 89.4, ReconBoost weighted CE (code form) 80.3 /
73.2, KL (paper form) 74.3 / 63.1; mfeat concat 84.2 / 83.8, UME 85.3 / 85.7, ReconBoost code form
85.1 / 74.5, KL form 84.8 / 77.2.
Quick-profile run time (2-core CPU, empty cache, `make book`, two notebooks at a time): 40 1010 s,
41 236 s, 42 39 s, 43 613 s (41-43 reuse 40's runs; the whole book of nine chapters 23.1 min).

Contents: the protocols (RB_SPECS_*, RB_PROTOCOLS, recipes), the Table 1 / 2 rows (RB_MAIN,
RB_FORMS), the variant sets of Tables 4 / 14 and the ablations (rb_*_variants), the paper's
names of our rows (RB_PAPER_NAMES, RB_VIEWS, ...), and `study`, the chapters' study builder.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from mmlab.configs import FAMILY, check_chapter_datasets, PaperScale, Protocol, Recipe, Sizes, Specs, StudySpec  # noqa: F401

# Chapters 40-43 (ReconBoost, ICML 2024) run every artifact under two protocols.
# "equal": every method the same passes over the training data (a ReconBoost stage is
# t1 + t2 of them, t1 = t2 = 1) and the same optimizer (Adam 1e-3, as chapter 01, whose
# concat / unimodal runs it shares: same epochs).
# "paper": each method with the recipe its own paper (or its authors' code) states, every
# method the same number of passes, scaled to the profile by the number of ReconBoost
# stages (never by cutting the paper's passes per stage).
RB_SPECS_EQUAL: Dict[str, StudySpec] = Specs({
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
})
RB_SPECS_PAPER: Dict[str, StudySpec] = Specs({
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
})
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

# Paper row -> our label, per paper table (the inverse of RB_PAPER_NAMES for Tables 1 / 2)
RB_OURS_NAMES = {v: k for k, v in RB_PAPER_NAMES.items()}
RB_FUSION_ROWS = ("Ours + NA", "Ours + LW", "Ours + TMC", "Ours + QMF", "OGM-GE + MMTM", "PMR + MMTM",
                  "UMT + MMTM")
RB_T14_COLUMNS = {"Overall Acc": "overall", "Audio Acc": "audio", "Visual Acc": "image"}
# Tables 8-10 (robustness, 50 % of the test samples of one case corrupted)
RB_NOISE_VARIANCES = (0.0, 0.1, 0.3, 0.5, 1.0)
RB_NOISE_CASES = {"image": ["image"], "audio": ["audio"], "both": ["image", "audio"]}
RB_NOISE_TABLES = {"image": "reconboost-table8", "audio": "reconboost-table9", "both": "reconboost-table10"}
RB_NOISE_WHAT = {"image": "the image data", "audio": "the audio data", "both": "the image and the audio data"}
RB_NOISE_ALONE = {"image": {"VisualNet": "image alone"}, "audio": {"AudioNet": "audio alone"},
                  "both": {"AudioNet": "audio alone", "VisualNet": "image alone"}}
RB_NOISE_NAMES = {"Concat Fusion": "concat", "OGM-GE": "OGM-GE", "PMR": "PMR", "UME": "UME", "UMT": "UMT",
                  "Ours": "ReconBoost"}
RB_NOISE_METHODS = ("unimodal", "concat", "OGM-GE", "PMR", "UME", "UMT")
# Table 16 (lambda) and Table 13 (selection order) rows -> our ablation labels
RB_T16_NAMES = {f"Ours (lambda={v})": f"lam={v}" for v in ("1/4", "1/3", "1/2", "1")}
RB_T13_NAMES = {"S_1": "S1 (lowest loss)", "S_2": "S2 (highest loss)", "Ours": "fixed (ours)"}
RB_T13_COLUMNS = {"audio": "Audio Acc", "image": "Visual Acc"}
RB_GRS_ROWS = ("with GRS", "w/o GRS", "fixed (ours)", "S1 (lowest loss)", "S2 (highest loss)")
RB_KNOBS = {"lam": "λ (KL form)", "alpha": "α (reference form)"}
# the methods whose recipes chapter 40 lists
RB_RECIPE_METHODS = ("unimodal", "concat", "gblend", "ogm_ge", "pmr", "ume", "umt", "reconboost")


def study(dataset: str, profile: str, variants=None, seeds=None, n_jobs: int = 1, device: str = "auto",
          with_unimodal: bool = True, protocol: str = "equal"):
    """mmlab.studies.protocol_study with the ReconBoost chapters' sizes and recipes of one
    protocol (RB_PROTOCOLS: "equal" budget or "paper" recipe); the default variants are the
    Table 1 / 2 rows (RB_MAIN). Returns (imbalance frame, [(label, RunConfig, Result)])."""
    from mmlab.studies import protocol_study
    return protocol_study(RB_PROTOCOLS[protocol], dataset, profile, variants or RB_MAIN, seeds=seeds,
                          n_jobs=n_jobs, device=device, with_unimodal=with_unimodal)


def forms_study(dataset: str, profile: str, **kw):
    """The two ReconBoost forms' runs of Table 1 / 2 only (no unimodal runs), for picking the
    reference form on validation in later chapters."""
    return study(dataset, profile, variants={f: RB_MAIN[f] for f in RB_FORMS}, with_unimodal=False, **kw)


@dataclass
class Studies:
    """The Table 1 / 2 studies of chapters 40-43: `runs[dataset, protocol]` = (imbalance frame,
    [(label, RunConfig, Result)]), and `ref[dataset, protocol]`, the ReconBoost form with the
    higher mean validation accuracy (the reference of every later table)."""
    profile: str
    datasets: List[str]
    protocols: List[str]
    seeds: Optional[tuple]
    n_jobs: int
    device: str
    runs: Dict[tuple, tuple]
    ref: Dict[tuple, str]

    @property
    def label(self) -> Dict[str, str]:
        """protocol id -> its label ("equal budget", "paper recipe")."""
        return {p: RB_PROTOCOLS[p].label for p in self.protocols}

    def frames(self):
        return [frame for frame, _ in self.runs.values() if frame is not None]

    def study(self, dataset: str, protocol: str, variants=None, with_unimodal: bool = True):
        """`study` with these studies' profile, seeds, jobs and device."""
        return study(dataset, self.profile, variants, seeds=self.seeds, n_jobs=self.n_jobs, device=self.device,
                     with_unimodal=with_unimodal, protocol=protocol)


def main_studies(profile: str, datasets=None, protocols=None, seeds=None, n_jobs: int = 1,
                 device: str = "auto", forms_only: bool = False) -> Studies:
    """Train (or read from the cache) the Table 1 / 2 rows of every dataset and protocol
    (default: RB_TABLES' datasets, both protocols) and pick the reference form on val;
    forms_only: only the two ReconBoost forms, no unimodal runs (chapters 43's need)."""
    check_chapter_datasets(datasets, RB_TABLES, "ReconBoost chapters 40-43")
    from mmlab.studies import best_on_val
    s = Studies(profile, list(datasets or RB_TABLES), list(protocols or RB_PROTOCOLS), seeds, n_jobs, device, {}, {})
    for p in s.protocols:
        for n in s.datasets:
            s.runs[n, p] = (s.study(n, p, {f: RB_MAIN[f] for f in RB_FORMS}, with_unimodal=False) if forms_only
                            else s.study(n, p))
            s.ref[n, p] = best_on_val(s.runs[n, p][1], RB_FORMS)
    return s


def fusion_studies(s: Studies) -> Dict[tuple, tuple]:
    """Table 4 / 14 variants (rb_fusion_variants of the reference form) per protocol, on the
    audio-visual stand-in only (the paper runs Table 4 on audio-visual sets only)."""
    return {(n, p): s.study(n, p, rb_fusion_variants(RB_MAIN[s.ref[n, p]][1]))
            for p in s.protocols for n in s.datasets if n == "avmnist"}


def ablation_studies(s: Studies) -> Dict[tuple, tuple]:
    """Fig. 7-8 / Tables 13, 16 variants (rb_ablation_variants of the reference form)."""
    return {(n, p): s.study(n, p, rb_ablation_variants(RB_MAIN[s.ref[n, p]][1]))
            for p in s.protocols for n in s.datasets}


# --- the full profile on the paper's own datasets (read from your copy: mmlab.data.cremad, ...) ---
# App. C.3: ResNet-18 (input channels adapted) on CREMA-D / AVE, three-layer MLPs + an LSTM text
# net on the MMSA-FET features; SGD lr 0.01 (x0.1 every 30 stages on CREMA-D, x0.5 at stage 40
# on AVE, constant on MOSEI / MOSI / SIMS); T1 = T2 = 4 (CREMA-D, AVE) or 1 passes per stage. The
# paper gives neither the number of stages nor the batch: 100 passes and OGM-GE's batch 64 (ours).
_RB_SCALE_SRC = "ReconBoost App. C.3 (stages and batch: ours, 100 passes, batch 64)"
RB_PAPER_SCALE = {
    "cremad": PaperScale("cremad", "CREMA-D", "ResNet-18 audio (1 ch) + visual (1 frame)", 100, 64,
                         Recipe(**_RB_SGD, method_options={"t1": 4, "t2": 4, "lr_decay": 0.1, "lr_decay_every": 30},
                                source=_RB_SCALE_SRC), 6698, resnet_inputs=2.0),
    "ave": PaperScale("ave", "AVE", "ResNet-18 audio (257x1004) + visual (3 frames)", 100, 64,
                      Recipe(**_RB_SGD, method_options={"t1": 4, "t2": 4, "lr_decay": 0.5, "lr_decay_every": 40},
                             source=_RB_SCALE_SRC + "; x0.5 every 40 stages (the paper: once, at 40)"),
                      3339, resnet_inputs=8.1),
    **{n: PaperScale(n, d, "MLP audio / visual, LSTM text (MMSA-FET features)", 100, 64,
                     Recipe(**_RB_SGD, method_options={"t1": 1, "t2": 1}, source=_RB_SCALE_SRC), size)
       for n, d, size in (("mosei", "MOSEI", 16326), ("mosi", "MOSI", 1284), ("sims", "CH-SIMS", 1368))},
}
RB_SPECS_EQUAL.scale = RB_SPECS_PAPER.scale = RB_PAPER_SCALE
