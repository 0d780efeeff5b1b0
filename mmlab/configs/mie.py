"""Chapters 20-21: MIE, Multimodal classification via Modal-aware Interactive Enhancement (Jiang,
Chi & Yang, 2024), under two protocols.

Run:
    make book NB=notebooks/20-mie-accuracy.ipynb     # Tables 1-4, Figs. 3-4
    make book NB=notebooks/21-mie-analysis.ipynb     # Figs. 5-6 (loss landscapes), Tables 5-7 (singular values, pretrained)
    python -m mmlab train --dataset mfeat --method mie --epochs 20
    python -m mmlab.bench epoch-time --dataset mfeat --method mie

Protocols. "equal": every method Adam 1e-3 for chapter 01's passes (the G-Blending, OGM-GE,
PMR and MLA runs of chapters 30 / 40 are reused as they are). "paper": MIE's recipe (Sec.
4.2.3: SGD lr 1e-2, momentum 0.9, weight decay 1e-4, lr / 10 "when the loss is saturated" --
here at epoch 70 of 100, the MLA chapters' schedule, since the paper gives neither its epochs
nor its plateau rule) for every method. With SGD 1e-2 the audio-visual stand-in's image branch
does not leave chance within 20 passes (MIE 61.3 % fused, image 9.2 %; concat's image 10 %), so
the quick profile runs the paper recipe on mfeat only (under 5 s a run) and full on both.

MIE's rho: the paper's 1e-10 (audio) / 1e-15 (image, text) perturb each weight by at most
1e-10, below float32 resolution for weights of ~1e-3 and more: SAM then moves a few weights
nearest zero by one ulp (float noise: up to 0.8 points of test accuracy between seeds-paired
runs on avmnist, exactly 0 on mfeat). The chapters run the paper's rho (MIE's default here) and rho = 0.05 (SAM's own default,
Foret et al.), where it acts.

Expected (quick profile, 3 seeds, test %, measured 2026-12-02): avmnist equal budget MIE 77.3
(Average) / 82.0 (Weight), MLA 84.4, baseline (no SAM, no GM) 78.1; mfeat equal budget MIE 83.8 /
84.9, MLA 84.8; mfeat paper recipe MIE 84.2 / 85.2, MLA 85.1. Quick run time (2-core CPU, empty
cache, `make book`, two notebooks at a time): 20 437 s, 21 119 s with the first grids (the
declared minutes of the notebooks follow the smaller final grids).
"""
from __future__ import annotations

from typing import Dict, Tuple

from mmlab.configs import FAMILY, check_chapter_datasets, PaperScale, Protocol, Recipe, Specs, equal_protocol  # noqa: F401
from mmlab.configs.mla import MLA_SPECS_EQUAL, MLA_SPECS_PAPER

MIE_RHO_PAPER = "paper"        # 1e-10 for audio, 1e-15 for the other modalities (MIE's default)
MIE_RHO_PAPER_AT = 1e-10       # where Fig. 4's axis shows it
MIE_RHO_ACTING = 0.05          # SAM's default (Foret et al. 2021), where the perturbation acts

# --- protocols ----------------------------------------------------------------------------
_MIE_SRC = ("MIE Sec. 4.2.3: SGD lr 1e-2, momentum 0.9, weight decay 1e-4, lr / 10 when the loss saturates "
            "(here StepLR at epoch 70 of 100), for every method")
# the full profile on MIE's own datasets (read from your copy): ResNet-18 as OGM-GE on CREMA-D / KS,
# BERT + ResNet-50 features (Twitter2015, Sarcasm), I3D features (NVGesture); head FC-256-64-c
_MIE_RECIPE = Recipe("sgd", 1e-2, 0.9, 1e-4, source=_MIE_SRC, lr_step=70)
MIE_PAPER_SCALE = {
    "cremad": PaperScale("cremad", "CREMA-D", "ResNet-18 audio + visual (as OGM-GE)", 100, 64, _MIE_RECIPE, 6698,
                         resnet_inputs=2.0),
    "kinetics_sounds": PaperScale("kinetics_sounds", "Kinetics-Sounds", "ResNet-18 audio + visual (as OGM-GE)",
                                  100, 64, _MIE_RECIPE, 14799, resnet_inputs=6.2),
    **{n: PaperScale(n, d, bb, 100, 64, _MIE_RECIPE, size) for n, d, bb, size in (
        ("twitter2015", "Twitter2015", "pre-extracted BERT text + ResNet-50 image features", 3179),
        ("sarcasm", "Sarcasm", "pre-extracted BERT text + ResNet-50 image features", 19816),
        ("nvgesture", "NVGesture", "pre-extracted I3D RGB / depth / flow features", 1050))},
}
_MIE_EQUAL, _MIE_PAPER = Specs(MLA_SPECS_EQUAL, scale=MIE_PAPER_SCALE), Specs(MLA_SPECS_PAPER, scale=MIE_PAPER_SCALE)
MIE_PROTOCOLS: Dict[str, Protocol] = {
    "equal": equal_protocol(_MIE_EQUAL, "every method Adam 1e-3 for chapter 01's passes (its runs and "
                                             "chapters 30 / 40's are reused)"),
    "paper": Protocol("paper", "paper recipe",
                      "MIE's recipe for every method: SGD 1e-2, momentum 0.9, weight decay 1e-4, lr x0.1 at epoch "
                      "70 of 100", _MIE_PAPER,
                      {n: {"*": _MIE_RECIPE} for n in _MIE_PAPER}),
}
MIE_DATASETS = {"equal": {"smoke": ("avmnist", "mfeat"), "quick": ("avmnist", "mfeat"), "full": ("avmnist", "mfeat")},
                "paper": {"smoke": ("mfeat",), "quick": ("mfeat",), "full": ("avmnist", "mfeat")}}
_NOPROBE = {"probe": False}

# --- Tables 1 / 2 rows: label -> (registered method, options, run options) --------------------
# "MIE (Weight)" is the same trained model as "MIE", fused at test time by MLA's entropy weights
# (mmlab.methods.mie.rule_metrics); "Baseline" (Table 2) = MIE without SAM and GM.
MIE_MAIN: Dict[str, tuple] = {
    "OGR-GB (G-Blending)": ("gblend", {}, {}), "OGM-GE": ("ogm_ge", {}, {}), "PMR": ("pmr", {}, {}),
    "MLA": ("mla", {}, {}),
    "Baseline (MIE w/o SAM, GM)": ("mie", {"sam": False, "gm": False}, _NOPROBE),
    "MIE": ("mie", {}, {**_NOPROBE, "track": ("method",)}),
}
MIE_PAPER_NAMES = {"OGR-GB": "OGR-GB (G-Blending)", "ORG-GB": "OGR-GB (G-Blending)", "OGM": "OGM-GE",
                   "PMR": "PMR", "MLA": "MLA", "MIE (Average)": "MIE", "MIE (Weight)": "MIE (Weight)",
                   "Baseline": "Baseline (MIE w/o SAM, GM)"}
# the paper's baselines not run here, with the reason (shown in chapter 20)
_NO_PAPER = ("its paper is not among the papers this book works from (../shared/papers), so it cannot be "
             "implemented here faithfully from its paper; quoted as reported")
MIE_NOT_RUN = {
    "Greedy": f"Greedy (Wu et al., ICML 2022: conditional utilisation with cross-modal bottlenecks): {_NO_PAPER}",
    "DOMFN": f"DOMFN (Yang et al., ACM MM 2022: distillation-based modality-specific feature fusion): {_NO_PAPER}",
    "MSES": f"MSES (Fujimori et al. 2020: modality-specific early stopping): {_NO_PAPER}",
    "MSLR": f"MSLR (Yao & Mihalcea, ACL Findings 2022: modality-specific learning rates): {_NO_PAPER}",
    "AGM": f"AGM (Li et al., ICCV 2023: Shapley-based mono-modal responses, adaptive gradient modulation): "
           f"{_NO_PAPER}",
}
MIE_COLUMNS = {"avmnist": {"Audio": "audio", "Video": "image"}}
MIE_TABLES = {"avmnist": ("CREMA-D", "Kinetics-Sounds"), "mfeat": ("NVGesture",)}
MIE_TABLE_OF = {"avmnist": "mie-table1", "mfeat": "mie-table2"}

# --- Table 3: SAM x GM, at the paper's rho and where SAM acts ----------------------------------
MIE_ABLATION: Dict[str, tuple] = {
    "SAM off, GM off": ("mie", {"sam": False, "gm": False}, _NOPROBE),
    "SAM off, GM on": ("mie", {"sam": False}, _NOPROBE),
    "SAM on (paper rho), GM off": ("mie", {"gm": False}, _NOPROBE),
    "SAM on (paper rho), GM on": ("mie", {}, {**_NOPROBE, "track": ("method",)}),
    "SAM on (rho 0.05), GM off": ("mie", {"gm": False, "rho": MIE_RHO_ACTING}, _NOPROBE),
    "SAM on (rho 0.05), GM on": ("mie", {"rho": MIE_RHO_ACTING}, _NOPROBE),
}
# the paper's rows (SAM, GM) -> ours at each rho
MIE_ABLATION_ROWS = {"paper rho": {("x", "x"): "SAM off, GM off", ("v", "x"): "SAM on (paper rho), GM off",
                                   ("x", "v"): "SAM off, GM on", ("v", "v"): "SAM on (paper rho), GM on"},
                     "rho 0.05": {("x", "x"): "SAM off, GM off", ("v", "x"): "SAM on (rho 0.05), GM off",
                                  ("x", "v"): "SAM off, GM on", ("v", "v"): "SAM on (rho 0.05), GM on"}}

# --- Fig. 3: interactive GM vs one direction only (the audio-visual stand-in, KS's family) -----
# "w/o v-GM": only the audio model modifies the video model's gradients (gm_from=(audio,))
MIE_DIRECTION_DATASET = "avmnist"
MIE_DIRECTIONS: Dict[str, tuple] = {
    "MIE (both directions)": MIE_ABLATION["SAM on (paper rho), GM on"],
    "w/o v-GM (audio modifies image only)": ("mie", {"gm_from": ("audio",)}, {**_NOPROBE, "track": ("method",)}),
    "w/o a-GM (image modifies audio only)": ("mie", {"gm_from": ("image",)}, {**_NOPROBE, "track": ("method",)}),
}

# --- Fig. 4: sensitivity to tau and rho (the audio-visual stand-in) ---------------------------------
MIE_SENSITIVITY_DATASET = "avmnist"
MIE_TAUS = {"smoke": (1e-5, 0.4, 100.0), "quick": (1e-5, 0.4, 100.0),
            "full": (1e-5, 1e-3, 1e-2, 0.1, 0.4, 1.0, 10.0, 100.0)}
MIE_RHOS = {"smoke": (0.0, "paper", 0.05), "quick": (0.0, "paper", 0.05, 0.2),
            "full": (0.0, 1e-15, "paper", 1e-5, 1e-3, 1e-2, 0.05, 0.1, 0.2, 0.5)}


def _tau_label(tau: float) -> str:
    return "SAM on (paper rho), GM on" if tau == 0.4 else f"tau {tau:g}"


def _rho_label(rho) -> str:
    named = {0.0: "SAM off, GM on", MIE_RHO_PAPER: "SAM on (paper rho), GM on",
             MIE_RHO_ACTING: "SAM on (rho 0.05), GM on"}
    return named[rho] if rho in named else f"rho {rho:g}"


def sensitivity_variants(profile: str) -> Dict[str, tuple]:
    """Fig. 4: one run per tau and per rho (the values shared with Table 3 reuse its runs)."""
    out = {_tau_label(t): ("mie", {"tau": t}, _NOPROBE) for t in MIE_TAUS[profile]}
    out.update({_rho_label(r): ("mie", {"rho": r} if r else {"sam": False}, _NOPROBE) for r in MIE_RHOS[profile]})
    out.update({k: MIE_ABLATION[k] for k in out if k in MIE_ABLATION})   # the very same runs
    return out


def sensitivity_points(profile: str) -> list:
    """[(parameter, value, label)] of Fig. 4's runs."""
    return [("tau", t, _tau_label(t)) for t in MIE_TAUS[profile]] + \
           [("rho", MIE_RHO_PAPER_AT if r == MIE_RHO_PAPER else r, _rho_label(r)) for r in MIE_RHOS[profile]]


# --- Table 4: scope of GM (the three-modality stand-in: its encoders share deep layers) --------
# The paper's fractions count parameters from the deepest layer (Kinetics-Sounds: two ResNet-18s,
# the head 1.3 %); only Linear layers of matching shape in every modality can be modified, so
# on avmnist (a 1-D CNN and a 2-D CNN) nothing beyond the head can.
MIE_SCOPE_DATASET = "mfeat"
MIE_SCOPES: Dict[str, tuple] = {
    "0 % (w/o GM)": MIE_ABLATION["SAM on (paper rho), GM off"],
    "classification head": MIE_ABLATION["SAM on (paper rho), GM on"],
    "30 %": ("mie", {"gm_scope": 0.3}, _NOPROBE),
    "50 %": ("mie", {"gm_scope": 0.5}, _NOPROBE),
    "100 %": ("mie", {"gm_scope": 1.0}, _NOPROBE),
}
MIE_SCOPE_PAPER = {"0 % (w/o GM)": "0% (w/o GM)", "classification head": "1.3% (Classification head)",
                   "30 %": "30%", "50 %": "50%", "100 %": "100%"}


def study(dataset: str, profile: str, variants, protocol: str = "equal", seeds=None, n_jobs: int = 1,
          device: str = "auto", with_unimodal: bool = True):
    """mmlab.studies.protocol_study with the MIE chapters' sizes and recipes of one protocol."""
    from mmlab.studies import protocol_study
    return protocol_study(MIE_PROTOCOLS[protocol], dataset, profile, variants, seeds=seeds, n_jobs=n_jobs,
                          device=device, with_unimodal=with_unimodal)


def main_studies(profile: str, datasets=None, protocols=None, seeds=None, n_jobs: int = 1,
                 device: str = "auto") -> Dict[tuple, tuple]:
    """Tables 1 / 2 rows per (dataset, protocol) the profile runs, plus Table 3's and Figs. 3-4's
    and Table 4's runs under the equal budget, where they belong: {(dataset, protocol):
    (imbalance frame, [(label, RunConfig, Result)])}."""
    check_chapter_datasets(datasets, MLA_SPECS_EQUAL, "MIE chapters 20-21")
    out = {}
    for p in protocols or MIE_PROTOCOLS:
        for n in MIE_DATASETS[p][profile]:
            if datasets is not None and n not in datasets:
                continue
            variants = {**MIE_MAIN, **MIE_ABLATION} if p == "equal" else dict(MIE_MAIN)
            if p == "equal" and n == MIE_DIRECTION_DATASET:
                variants.update(MIE_DIRECTIONS)
            if p == "equal" and n == MIE_SENSITIVITY_DATASET:
                variants.update(sensitivity_variants(profile))
            if p == "equal" and n == MIE_SCOPE_DATASET:
                variants.update(MIE_SCOPES)
            out[n, p] = study(n, profile, variants, p, seeds, n_jobs, device)
    return out


def need(studies: Dict[tuple, tuple], dataset: str, protocol: str = "equal") -> tuple:
    """studies[dataset, protocol] for a section that is drawn from that study, or an error
    saying which notebook parameters left it out."""
    if (dataset, protocol) not in studies:
        raise ValueError(f"this section needs the {dataset!r} study under the {protocol!r} protocol, which the "
                         f"parameters left out (have {sorted(studies)}); run with datasets including {dataset!r} "
                         f"and protocols including {protocol!r}, or skip the section")
    return studies[dataset, protocol]


# --- Figs. 5-6, Tables 5 / 7: landscapes and singular values (the audio-visual stand-in) -------
# Fig. 5's columns: baseline (MIE w/o SAM, GM), MLA, MIE; MIE also at the rho where SAM acts
MIE_LANDSCAPE_DATASET = "avmnist"
MIE_LANDSCAPE_MODELS = {"Baseline": "SAM off, GM off", "MLA": "MLA", "MIE": "SAM on (paper rho), GM on",
                        "MIE (rho 0.05)": "SAM on (rho 0.05), GM on"}
# a fixed subset of n training samples; the plane's half-width in filter-normalised units; points per axis
MIE_LANDSCAPE = {"smoke": {"n": 128, "radius": 1.0, "steps": 7}, "quick": {"n": 256, "radius": 1.0, "steps": 11},
                 "full": {"n": 1024, "radius": 1.0, "steps": 31}}
# Table 5: MIE vs MIE w/o SAM, per head layer (at the paper's rho and at rho 0.05)
MIE_SPECTRA_MODELS = {"MIE (w/o SAM)": "SAM off, GM on", "MIE": "SAM on (paper rho), GM on",
                      "MIE (rho 0.05)": "SAM on (rho 0.05), GM on"}
MIE_SPECTRA_SHOWN = {"SAM off, GM on": "MIE w/o SAM", "SAM on (paper rho), GM on": "MIE",
                     "SAM on (rho 0.05), GM on": "MIE ρ 0.05"}
MIE_LAYER_NAMES = {"head.fc1": "FC(Dim x 256)", "head.fc2": "FC(256 x 64)", "head.fc3": "FC(64 x c)"}

# --- Table 6: pretrained encoders (the stand-in of chapter 32: MLA's, with MIE added) ----------
MIE_PRETRAINED_DATASET = "mfeat"
MIE_PRETRAINED: Dict[str, tuple] = {
    "concat, pretrained encoders": ("concat", {"pretrained": True}, {}),
    "MLA, pretrained encoders": ("mla", {"pretrained": True}, {}),
    "MIE, pretrained encoders": ("mie", {"pretrained": True}, _NOPROBE),
}
MIE_T6_NAMES = {"CLIP": "concat, pretrained encoders", "CLIP+MLA": "MLA, pretrained encoders",
                "CLIP+MIE": "MIE, pretrained encoders"}
MIE_T6_COLUMNS = {"Text": "zer", "Image": "mor"}        # Twitter2015's strong / weak modality -> ours
