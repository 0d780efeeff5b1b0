"""Configs as code, with provenance (big_vision style): the paper-independent parts.

One module per paper holds that paper's studies, each naming the paper artifact it stands in
for, the paper's reported number, the expected run time on this project's 2-core CPU, and its
sizes per profile (the datasets are built with their calibrated default constructions,
mmlab.data.<name>.VARIANTS; the "easy" variants of the first ReconBoost round are reachable
with dataset option variant="easy"):

  mmlab.configs.imbalance   chapters 00-01 (shared benchmarks, calibration, imbalance)
  mmlab.configs.erl_mr      chapters 10-11 (ERL-MR, ACM MM 2024)
  mmlab.configs.mie         chapters 20-21 (MIE, 2024)
  mmlab.configs.mla         chapters 30-32 (MLA, CVPR 2024)
  mmlab.configs.reconboost  chapters 40-43 (ReconBoost, ICML 2024)

Profiles:
  smoke - seconds per run, exercised by CI (numbers are not meaningful);
  quick - the default book build, a laptop CPU;
  full  - paper-scale epochs and data, meant for a GPU.
This module: Sizes, StudySpec, Recipe, Protocol, PROFILES, FAMILY, JOINT_METHODS.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
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


# Sizes of a dataset no chapter has a spec for (a paper's own dataset read from your copy, a
# plugin's): a few hundred samples for smoke, 10 passes for quick, 100 for full, 3 seeds each.
# A dataset module may declare its own (SIZES = {"smoke": Sizes(...), "quick": ..., "full": ...})
# and the modality expected to be starved (WEAK = "visual"); else the last modality is named.
GENERIC_SIZES = {"smoke": Sizes(1, train_subset=300, probe_max_train=300), "quick": Sizes(10),
                 "full": Sizes(100)}


def generic_spec(dataset: str) -> StudySpec:
    """A StudySpec for any registered dataset (Specs' fallback): its module's SIZES / WEAK
    when declared, else GENERIC_SIZES and its last modality."""
    from mmlab.data import DATASETS
    from mmlab.data.base import dataset_module
    if dataset not in DATASETS:
        DATASETS.get(dataset)                   # the registry's error lists the known datasets
    module = dataset_module(dataset)
    sizes = {**GENERIC_SIZES, **getattr(module, "SIZES", {})}
    weak = getattr(module, "WEAK", None)
    if weak is None:
        from mmlab.data import load_dataset
        weak = load_dataset(dataset, **sizes["smoke"].dataset_options).info.modality_names[-1]
    return StudySpec(dataset, f"{dataset} (no stand-in: the dataset itself)", "—", weak,
                     {"smoke": 1, "quick": 10, "full": 600}, **sizes)


class Specs(dict):
    """StudySpecs by dataset; one a chapter has no spec for gets generic_spec(dataset), with the
    paper's own settings as its full profile when `scale` (the paper's PAPER_SCALE) has that
    dataset, so every chapter's studies run on a paper's or a user's dataset too
    (`specs["cremad"]`; `in` still tells the chapter's own stand-ins apart)."""

    def __init__(self, specs=(), scale: Optional[Dict[str, "PaperScale"]] = None):
        super().__init__(specs)
        self.scale = scale or {}

    def __missing__(self, dataset: str) -> StudySpec:
        spec = generic_spec(dataset)
        if dataset not in self.scale:
            return spec
        ps = self.scale[dataset]
        return replace(spec, stands_in_for=f"{ps.paper_dataset} itself (your copy)", full=ps.sizes(),
                       minutes=dict(spec.minutes, full=round(60 * ps.gpu_hours(), 1)))


# throughput of one ResNet-18 forward + backward at 224 x 224 on one current data-centre GPU with
# bf16 AMP and channels-last, images per second: the basis of PaperScale.gpu_hours (an estimate
# from public ResNet-18 training benchmarks, not measured here: these machines have no GPU)
RESNET18_IMAGES_PER_S = 2500.0


@dataclass(frozen=True)
class PaperScale:
    """A paper's own setting on one of its datasets: what the full profile trains there."""
    dataset: str                 # mmlab registry name ("cremad")
    paper_dataset: str           # as the paper's tables name it ("CREMA-D")
    backbone: str                # per modality, as the paper states it
    epochs: int
    batch_size: int
    recipe: Recipe               # optimizer, lr, momentum, weight decay, StepLR; its source
    train_samples: int           # training-set size of the public release
    resnet_inputs: float = 0.0   # 224x224-equivalent ResNet-18 inputs per sample (0: feature files)
    seeds: Tuple[int, ...] = (0, 1, 2)

    def sizes(self) -> Sizes:
        return Sizes(self.epochs, seeds=self.seeds, batch_size=self.batch_size, lr=self.recipe.lr)

    def gpu_hours(self) -> float:
        """Expected GPU hours of one run: epochs x samples x ResNet-18 inputs / throughput, plus
        a 20 % allowance for validation (feature-file sets: 0.05 h, data loading bound)."""
        if not self.resnet_inputs:
            return 0.05
        return 1.2 * self.epochs * self.train_samples * self.resnet_inputs / RESNET18_IMAGES_PER_S / 3600


def scale_table(scales: Dict[str, PaperScale], runs_per_dataset: Optional[Dict[str, int]] = None):
    """One row per paper dataset: backbone, epochs, batch, optimizer, schedule, GPU hours per run
    (and per chapter when the number of runs is given), source."""
    import pandas as pd
    rows = []
    for n, ps in scales.items():
        r = ps.recipe
        sched = f"x0.1 every {r.lr_step} epochs" if r.lr_step else "constant / per the method"
        row = {"dataset": n, "paper's": ps.paper_dataset, "backbone": ps.backbone, "epochs": ps.epochs,
               "batch": ps.batch_size, "optimizer": f"{r.optimizer} lr {r.lr:g}, wd {r.weight_decay:g}",
               "schedule": sched, "GPU h / run": round(ps.gpu_hours(), 2), "source": r.source}
        if runs_per_dataset:
            row["GPU h (chapters)"] = round(ps.gpu_hours() * runs_per_dataset.get(n, 0), 1)
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset")


def check_chapter_datasets(datasets, stand_ins, chapter: str) -> None:
    """A paper chapter's tables and claims are mapped per stand-in (its name maps and the paper
    rows each stand-in answers for): any other dataset is refused with what runs on it instead."""
    other = sorted(set(datasets or ()) - set(stand_ins))
    if other:
        raise ValueError(f"{chapter} runs on its stand-ins {sorted(stand_ins)}, not on {other}: its tables map "
                         f"paper rows to those stand-ins. A paper's own dataset or a plugin's runs through "
                         f"chapter 01 (notebooks/01-modality-imbalance.ipynb -y 'datasets: [...]'), "
                         f"`python -m mmlab train` or mmlab.runner.run_many")


class Families(dict):
    """FAMILY with no paper dataset for an unknown name: claims are untested there."""

    def __missing__(self, dataset: str) -> tuple:
        return ()


# The papers' datasets each stand-in represents. A claim is tested on a stand-in only where
# the paper's own numbers show it on the datasets of this family (mmlab.papers.comparison).
FAMILY: Dict[str, Tuple[str, ...]] = Families({
    "cgm": ("CG-MNIST",),
    "avmnist": ("CREMA-D", "AVE", "Kinetics-Sounds"),       # audio-visual
    "watch": ("USC", "MHAD"),                               # inertial (accelerometer + gyroscope)
    "mfeat": ("MOSEI", "MOSI", "CH-SIMS", "IEMOCAP", "NVGesture"),   # three modalities
    # the papers' own datasets, read from a copy you supply (mmlab.data.cremad, ...): a claim is
    # tested on one against the paper's numbers for that very dataset
    "cremad": ("CREMA-D",), "ave": ("AVE",), "kinetics_sounds": ("Kinetics-Sounds",),
    "uschad": ("USC",), "utdmhad": ("MHAD",), "mosi": ("MOSI",), "mosei": ("MOSEI",),
    "sims": ("CH-SIMS",), "iemocap": ("IEMOCAP",), "nvgesture": ("NVGesture",),
    "food101": ("Food-101",), "mvsa": ("MVSA",), "twitter2015": ("Twitter2015",), "sarcasm": ("Sarcasm",),
})


@dataclass(frozen=True)
class Recipe:
    """How a method is trained under a protocol: optimizer settings, method options, source."""
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    method_options: Dict = field(default_factory=dict)
    source: str = ""
    lr_step: Optional[int] = None        # StepLR every lr_step epochs (x0.1), as the paper's schedule

    def run_kwargs(self) -> dict:
        out = dict(optimizer=self.optimizer, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        return {**out, "lr_step": self.lr_step} if self.lr_step else out


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
        """The recipe of `method` on `dataset`; on a dataset the protocol has no recipes for, the
        paper's own setting under "paper" when the specs' PAPER_SCALE has it, else Adam 1e-3."""
        r = self.recipes.get(dataset)
        if r is None:
            scale = getattr(self.specs, "scale", {})
            if self.name == "paper" and dataset in scale:
                return scale[dataset].recipe
            return Recipe(source="Adam 1e-3 (no recipe of this protocol for this dataset)")
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


def equal_protocol(specs: Dict[str, StudySpec],
                   description: str = "every method Adam 1e-3 for chapter 01's passes (its runs are reused)") -> Protocol:
    """The paper chapters' "equal budget" protocol over `specs`: every method Adam 1e-3 for chapter
    01's passes (its runs are reused)."""
    return Protocol("equal", "equal budget", description, specs, {n: {"*": Recipe(source="Adam 1e-3 for every method (chapter 01's setting)")} for n in specs})

