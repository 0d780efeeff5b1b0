"""The book's figures: every figure function of mmlab.viz and reconboost_figures passes
viz.layout_problems on inputs shaped like the notebooks' (synthetic frames with the real
columns, labels and sizes; tiny real runs for the frames mmlab.studies builds), the check
itself flags what it should, and every method keeps one colour."""
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.patches import Patch

from mmlab import viz
from mmlab.configs.imbalance import JOINT_METHODS
from mmlab.configs.reconboost import (RB_FORMS, RB_KNOBS, RB_MAIN, rb_ablation_variants, rb_fusion_variants)
from mmlab.papers import imbalance as imb
from mmlab.papers import reconboost_figures as rbfig
from mmlab.studies import alone_label, with_random_probe

MODS = {"cgm": ["gray", "color"], "avmnist": ["audio", "image"], "watch": ["acc", "gyro"],
        "mfeat": ["fou", "zer", "mor"]}
LABEL = {"equal": "equal budget", "paper": "paper recipe"}
REF = "ReconBoost (weighted CE, code)"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def clean(fig):
    problems = viz.layout_problems(fig)
    assert problems == [], "\n".join(problems)


# --------------------------------------------------------------------------- inputs
def imbalance_rows(methods, datasets=MODS, seeds=(0, 1, 2), rng=None):
    """mmlab.studies.imbalance_frame columns: one row per (dataset, method, seed, modality)."""
    rng = rng or np.random.default_rng(0)
    rows = []
    for ds, mods in datasets.items():
        for m in methods:
            for seed in seeds:
                fused = rng.uniform(0.5, 0.9)
                for mod in mods:
                    a = rng.uniform(0.2, 0.9)
                    rows.append({"dataset": ds, "method": m, "seed": seed, "modality": mod, "fused_acc": fused,
                                 "per_modality_acc": a, "joint_only_acc": a - 0.05, "probe": a + 0.02,
                                 "probe_random": a - 0.2, "unimodal_acc": a + 0.05, "unimodal_probe": a + 0.03})
    return pd.DataFrame(rows)


def history_rows(methods, mods, epochs=15, seeds=(0, 1, 2)):
    """mmlab.studies.history_frame columns."""
    rng = np.random.default_rng(1)
    return pd.DataFrame([{"dataset": "avmnist", "method": m, "seed": s, "epoch": e, "modality": mod,
                          "val_acc": min(1.0, 0.1 + 0.05 * e + rng.normal(0, 0.02))}
                         for m in methods for s in seeds for e in range(1, epochs + 1) for mod in mods])


def fake_splits(name="cgm", mods=("gray", "color"), shape=(1, 28, 28), classes=None, n=60):
    """What load_dataset returns, as far as the dataset tours read it."""
    classes = classes or [str(c) for c in range(10)]
    g = torch.Generator().manual_seed(0)

    def split(k):
        y = torch.arange(k) % len(classes)
        return SimpleNamespace(y=y, x={m: torch.rand((k, *shape), generator=g) for m in mods})
    info = SimpleNamespace(name=name, num_classes=len(classes), class_names=classes, modality_names=list(mods))
    return SimpleNamespace(train=split(n), val=split(n // 4), test=split(n // 2), info=info)


def studies(datasets=("avmnist", "mfeat")):
    """A stand-in for mmlab.configs.reconboost.Studies: runs[dataset, protocol] = (imbalance
    frame of the Table 1 / 2 rows, [(label, config, result)]), ref, label."""
    rng = np.random.default_rng(2)
    runs = {}
    for n in datasets:
        for p in LABEL:
            frame = imbalance_rows(["unimodal", *RB_MAIN], {n: MODS[n]}, rng=rng)
            runs[n, p] = (frame, [(lab, SimpleNamespace(seed=s, method_options={}), None)
                                  for lab in ["unimodal", *RB_MAIN] for s in (0, 1, 2)])
    return SimpleNamespace(profile="smoke", datasets=list(datasets), protocols=list(LABEL), label=LABEL, runs=runs,
                           ref={k: REF for k in runs})


def objective_rows(s):
    rng = np.random.default_rng(3)
    passes = {("avmnist", "equal"): 6, ("mfeat", "equal"): 20, ("avmnist", "paper"): 32, ("mfeat", "paper"): 40}
    return pd.DataFrame([{"dataset": n, "protocol": LABEL[p], "method": f, "seed": seed, "epoch": e,
                          "train loss": rng.uniform(0, 2.5)}
                         for (n, p) in s.runs for f in RB_FORMS for seed in (0, 1, 2)
                         for e in range(1, passes[n, p] + 1)])


def per_method_rows(s, value, methods=tuple(RB_MAIN), **extra):
    rng = np.random.default_rng(4)
    return pd.DataFrame([{"dataset": n, "protocol": LABEL[p], "method": m, "seed": seed,
                          value: rng.normal(5, 10), **{k: f(rng) for k, f in extra.items()}}
                         for (n, p) in s.runs for m in methods for seed in (0, 1, 2)])


def t12_rows():
    """rb.dmc_improvement: index (dataset, protocol), the scatter's columns dmc / imp."""
    rows = [("avmnist", "equal budget", 1.04, -1.0), ("avmnist", "paper recipe", 1.34, -3.7),
            ("mfeat", "equal budget", 0.98, 0.9), ("mfeat", "paper recipe", 0.99, -8.0)]
    return pd.DataFrame([{"dataset": d, "protocol": p, "dmc": x, "imp": y} for d, p, x, y in rows]).set_index(
        ["dataset", "protocol"])


def tsne_frames(s):
    rng = np.random.default_rng(5)
    methods = ["unimodal", "concat", "OGM-GE", "PMR", "UMT", REF]
    return {p: pd.DataFrame([{"method": m, "modality": mod, "xy": rng.standard_normal((300, 2)),
                              "y": np.arange(300) % 10, "silhouette": 0.05, "knn_acc": 0.6}
                             for m in methods for mod in ("audio", "image")]) for p in LABEL}


def robustness_rows():
    """rb.robustness: protocol, case, variance, acc, method (the reference as "ReconBoost",
    unimodal runs as "<modality> alone", in their own corruption case)."""
    rows = []
    for p in LABEL.values():
        for case in ("audio", "image", "both"):
            alone = [f"{case} alone"] if case != "both" else []
            for m in [*alone, "concat", "OGM-GE", "PMR", "UME", "UMT", "ReconBoost"]:
                for v in (0.0, 0.1, 0.3, 0.5, 1.0):
                    rows += [{"protocol": p, "case": case, "variance": v, "acc": 0.85 - 0.3 * v + 0.01 * s,
                              "method": m} for s in range(3)]
    return pd.DataFrame(rows)


def sweep_rows():
    """rb.sweeps: knob, value, dataset, protocol, fused_acc."""
    values = {"lam": ["1/4", "1/3", "1/2", "1"], "alpha": ["0.0", "0.1", "0.5", "1.0"]}
    return pd.DataFrame([{"knob": RB_KNOBS[k], "value": v, "dataset": n, "protocol": p, "seed": s,
                          "method": f"{k}={v}", "fused_acc": 0.7 + 0.01 * s}
                         for k, vs in values.items() for v in vs for n in ("avmnist", "mfeat")
                         for p in LABEL.values() for s in range(3)])


def fused_frames(s):
    labels = list(rb_ablation_variants({}))
    return {k: pd.DataFrame([{"method": m, "seed": seed, "fused_acc": 0.7 + 0.01 * seed} for m in labels
                             for seed in (0, 1, 2)]) for k in s.runs}


def ablation_runs(s):
    """ablation_studies: {(dataset, protocol): (frame, [(label, config, result with history)])}."""
    def result(n, passes):
        return SimpleNamespace(history=[{"epoch": e, "train": {"loss": 2.0 / (e + 1)},
                                         "val": {"acc": 0.1 + e / passes * 0.6,
                                                 "per_modality": {m: 0.1 + e / passes * 0.5 for m in MODS[n]}}}
                                        for e in range(passes)])
    t = {"equal": 1, "paper": 4}
    return {(n, p): (None, [(lab, SimpleNamespace(seed=seed, method_options={"t1": t[p], "t2": t[p]}),
                             result(n, 8 * t[p])) for lab in ("with GRS", "w/o GRS") for seed in (0, 1, 2)])
            for (n, p) in s.runs}


# --------------------------------------------------------------------------- viz figures
def test_dataset_tours_are_clean():
    cgm = fake_splits()
    clean(viz.show_images(cgm, ["gray", "color"], title="cgm: train colours follow the class, test colours do not"))
    clean(viz.show_images(fake_splits("avmnist", ["image"]), ["image"], title="avmnist image modality (windowed)"))
    audio = fake_splits("avmnist", ["audio"], shape=(10, 13))
    clean(viz.show_sequences(audio, "audio", kind="heatmap"))
    watch = fake_splits("watch", ["acc", "gyro"], shape=(100, 3),
                        classes=["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"])
    clean(viz.show_sequences(watch, "gyro", kind="lines", channel_names=["x", "y", "z"]))
    mfeat = fake_splits("mfeat", ["fou", "zer", "mor"], shape=(76,))
    clean(viz.show_class_means(mfeat, title="mfeat: class means per view"))
    for sp in (cgm, watch):
        clean(viz.class_balance(sp))


def test_result_figures_are_clean():
    df = imbalance_rows(["unimodal", *JOINT_METHODS])
    uni = df[df.method == "unimodal"]
    strength = viz.bars(imb.unimodal_strength(uni), x="dataset / modality", y="accuracy", hue="measure",
                        width=9.0, title="Unimodal strength (mean ± std over seeds)")
    clean(strength)
    strength.axes[0].tick_params(axis="x", rotation=30)          # what chapter 00 does after bars()
    clean(strength)
    clean(viz.bars_by(alone_label(df), "dataset", x="modality", y="joint_only_acc", hue="method",
                      ylabel="joint-only / alone accuracy"))
    clean(viz.bars_by(with_random_probe(df), "dataset", x="modality", y="probe", hue="method",
                      ylabel="linear-probe test accuracy"))
    for mods in (["audio", "image"], ["fou", "zer", "mor"]):
        clean(viz.learning_curves(alone_label(history_rows(["unimodal", *JOINT_METHODS], mods)),
                                  title="avmnist: per-modality validation accuracy"))


def test_embedding_and_noise_figures_are_clean():
    s = studies()
    rows = tsne_frames(s)["equal"]
    fig = viz.tsne_grid({(r.method, r.modality): (r.xy, r.y) for r in rows.itertuples()},
                        title="avmnist, equal budget: t-SNE of test features (seed 0)",
                        scores={(r.method, r.modality): "sil 0.05\nknn 60%" for r in rows.itertuples()})
    clean(fig)
    rob = robustness_rows()
    clean(viz.noise_curves(rob[rob.protocol == "equal budget"], title="avmnist, equal budget: 50% corrupted"))


def test_figures_from_tiny_real_runs_are_clean():
    """The frames mmlab.studies builds from real Results (synthetic data, two epochs: edge tick labels)."""
    import mmlab
    from mmlab.studies import history_frame, imbalance_frame
    cfgs = [mmlab.RunConfig(dataset="synthetic", method=m, epochs=2, seed=s, device="cpu", probe=False,
                            method_options={"modality": mod} if m == "unimodal" else {})
            for s in (0, 1) for m, mod in [("unimodal", "m0"), ("unimodal", "m1"), ("concat", None), ("late", None)]]
    results = [mmlab.run(c) for c in cfgs]
    df = alone_label(imbalance_frame(results))
    clean(viz.bars_by(df, "dataset", x="modality", y="joint_only_acc", hue="method"))
    clean(viz.learning_curves(alone_label(history_frame(results)), title="synthetic"))


# --------------------------------------------------------------------------- ReconBoost figures
def test_reconboost_accuracy_figures_are_clean():
    s = studies()
    clean(rbfig.objective(s, objective_rows(s)))
    clean(rbfig.dmc_vs_improvement(s, t12_rows()))
    clean(rbfig.gain(s, per_method_rows(s, "gain")))


def test_dmc_labels_do_not_overlap_and_keep_every_dataset():
    s = studies()
    fig = rbfig.dmc_vs_improvement(s, t12_rows())
    names = [t.get_text() for t in fig.axes[0].texts]
    assert sorted(names) == sorted(["CREMA-D", "AVE", "MOSEI", "MOSI", "CH-SIMS"] + ["avmnist", "mfeat"] * 2)
    assert not [p for p in viz.layout_problems(fig) if "annotations" in p]


def test_reconboost_encoder_figures_are_clean():
    s = studies()
    clean(rbfig.probes(s))
    mirs = per_method_rows(s, "mir_mul", methods=[m for m in RB_MAIN], mir_uni=lambda r: r.uniform(0.8, 1.2))
    clean(rbfig.mir(s, mirs))
    for fig in rbfig.tsne(s, tsne_frames(s), "avmnist").values():
        clean(fig)


def test_reconboost_robustness_and_ablation_figures_are_clean():
    s = studies(("avmnist",))
    for fig in rbfig.noise(s, robustness_rows(), ["concat", "OGM-GE", "PMR", "UME", "UMT", "ReconBoost",
                                                  "image alone", "audio alone"]).values():
        clean(fig)
    s = studies()
    clean(rbfig.sensitivity(sweep_rows()))
    clean(rbfig.grs(s, fused_frames(s)))
    figs = rbfig.convergence(s, ablation_runs(s))
    assert len(figs) == 4
    for fig in figs.values():
        clean(fig)


def test_one_dataset_and_one_protocol_grids_are_clean():
    """Notebook parameters can shrink the grids (datasets=["avmnist"], protocols=["equal"])."""
    s = studies(("avmnist",))
    s.protocols, s.runs = ["equal"], {k: v for k, v in s.runs.items() if k[1] == "equal"}
    clean(rbfig.objective(s, objective_rows(s)))
    clean(rbfig.gain(s, per_method_rows(s, "gain")))
    clean(rbfig.probes(s))
    one = imbalance_rows(["unimodal", *JOINT_METHODS], {"watch": MODS["watch"]})
    clean(viz.bars_by(alone_label(one), "dataset", x="modality", y="joint_only_acc", hue="method"))


# --------------------------------------------------------------------------- the check itself
def test_layout_problems_flags_a_legend_on_the_data():
    fig, axes = viz.subplots(1, 1)
    ax = axes[0][0]
    for k in range(3):
        ax.plot(np.arange(10), np.arange(10) * (k + 1), label=f"line {k}")
    ax.legend(loc="upper left")
    assert any("legend" in p and "plot area" in p for p in viz.layout_problems(fig))
    viz.legend_right(ax)                                           # the fix
    assert viz.layout_problems(fig) == []


def test_layout_problems_flags_overlapping_titles_and_texts():
    fig, axes = viz.subplots(1, 2, layout=None)
    fig.subplots_adjust(top=0.95, wspace=0.0)
    axes[0][0].set_title("a long title that runs well into its neighbour's title")
    axes[0][1].set_title("the neighbour's own long title, also wide")
    fig.suptitle("a suptitle placed on top of the panel titles", y=0.97)
    problems = viz.layout_problems(fig)
    assert any("overlaps" in p and "the figure" in p for p in problems), problems        # suptitle on a title
    assert any("of panel 1" in p and "of panel 2" in p for p in problems), problems      # title on title
    assert any("runs into the plot area" in p for p in problems), problems               # tick labels, wspace=0


def test_layout_problems_flags_annotations_and_crowded_ticklabels():
    fig, axes = viz.subplots(1, 1, width=3.0)
    ax = axes[0][0]
    ax.scatter([2, 2.05], [2, 2.02])
    ax.annotate("first label", (2, 2)), ax.annotate("second label", (2.05, 2.02))
    ax.set_xticks(range(6), [f"a long category name {i}" for i in range(6)])
    ax.set_ylim(0, 5)
    problems = viz.layout_problems(fig)
    assert any(p.startswith("annotations") for p in problems), problems
    assert any(p.startswith("tick labels") for p in problems), problems
    ax.texts[1].remove()
    viz.fit_ticklabels(ax)                                         # the fix: wrapped and rotated
    assert viz.layout_problems(fig) == []
    assert ax.get_xticklabels()[0].get_rotation() > 0


def test_layout_problems_flags_text_too_small_in_the_book():
    fig, axes = viz.subplots(1, 4, width=4.4)                      # 17.6 in: scaled to 30 % in the book
    axes[0][0].plot([0, 1], [0, 1])
    axes[0][0].text(0.5, 0.5, "tiny note", fontsize=7)
    problems = viz.layout_problems(fig)
    assert any("7 pt" in p and "tiny note" in p for p in problems), problems
    fig, axes = viz.subplots(1, 1, width=4.0)                      # narrower than the column: not scaled
    axes[0][0].text(0.5, 0.5, "tiny note", fontsize=7)
    assert viz.layout_problems(fig) == []
    axes[0][0].text(0.5, 0.2, "unreadable", fontsize=3)
    assert any("3 pt" in p for p in viz.layout_problems(fig))


def test_save_writes_the_layout_report(tmp_path, monkeypatch):
    import json
    monkeypatch.setenv("MMLAB_FIGURES", str(tmp_path))
    fig, axes = viz.subplots(1, 1)
    axes[0][0].plot([0, 1], [0, 1], label="a")
    axes[0][0].legend(loc="center")
    path = viz.save(fig, "99-test", "fig")
    assert path == tmp_path / "99-test" / "fig.png" and path.stat().st_size > 0
    report = json.loads((tmp_path / "99-test" / "fig.layout.json").read_text())
    assert report["problems"] and "legend" in report["problems"][0]
    viz.legend_right(axes[0][0])
    viz.save(fig, "99-test", "fig")
    assert json.loads((tmp_path / "99-test" / "fig.layout.json").read_text()) == {"problems": []}


# --------------------------------------------------------------------------- colours
BOOK_METHODS = ["unimodal", "random", *JOINT_METHODS, *RB_MAIN, "ReconBoost", "MLA", "MIE", "ERL-MR", "QMF",
                "TMC", "AGM", "MSLR", "MSES", "DOMFN", "Greedy", "MMCosine", "CentralNet", "AE", "MMIN"]


def test_method_colors_are_fixed_and_distinct():
    groups = [list(dict.fromkeys(BOOK_METHODS)), list(rb_fusion_variants({})), list(rb_ablation_variants({}))]
    everything = [lab for g in groups for lab in g]
    colors = viz.method_colors(everything)
    assert colors == viz.method_colors(everything) == viz.method_colors(list(reversed(everything)))
    assert all(lab in viz.METHOD_COLORS for lab in everything)     # a fixed colour, not the fallback
    for g in groups:
        assert len({colors[lab] for lab in g}) == len(g), g
    # one method, one colour: registry names and the book's aliases
    same = viz.method_colors(["ogm_ge", "OGM-GE", "gblend", "G-Blending", "alone", "unimodal", "reconboost"])
    assert same["ogm_ge"] == same["OGM-GE"] and same["gblend"] == same["G-Blending"]
    assert same["alone"] == same["unimodal"] and same["reconboost"] == viz.METHOD_COLORS["ReconBoost"]


def test_method_colors_fallback_is_stable_and_distinct():
    new = ["method X", "method Y", "another method", "image alone", "audio alone"]
    a, b = viz.method_colors(new), viz.method_colors(new)
    assert a == b == viz.method_colors(list(reversed(new))) and len(set(a.values())) == len(new)
    assert viz.method_colors(["method X"])["method X"] == a["method X"]
    assert a["image alone"] != a["audio alone"]


def test_figures_use_the_method_colours():
    s = studies()
    fig = rbfig.objective(s, objective_rows(s))
    legend = fig.legends[0]
    got = {t.get_text(): h.get_color() for t, h in zip(legend.get_texts(), legend.legend_handles)}
    assert got == {f: viz.METHOD_COLORS[f] for f in RB_FORMS}
    df = imbalance_rows(["unimodal", *JOINT_METHODS])
    fig = viz.bars_by(alone_label(df), "dataset", x="modality", y="joint_only_acc", hue="method")
    legend = fig.legends[0]
    from matplotlib.colors import to_hex
    got = {t.get_text(): to_hex(h.get_facecolor()) for t, h in zip(legend.get_texts(), legend.legend_handles)}
    assert got == {m: viz.METHOD_COLORS[m] for m in ["alone", *JOINT_METHODS]}
    fig = rbfig.gain(s, per_method_rows(s, "gain"))
    bars = [to_hex(p.get_facecolor()) for p in fig.axes[0].patches]
    assert bars == [viz.METHOD_COLORS[m] for m in RB_MAIN]


def test_convergence_legend_names_the_shading():
    s = studies()
    fig = next(iter(rbfig.convergence(s, ablation_runs(s)).values()))
    handles = fig.legends[0].legend_handles
    assert any(isinstance(h, Patch) for h in handles)


def test_one_epoch_learning_curves_are_clean():
    """A smoke build trains one epoch: a single x value must not spawn fractional epoch ticks."""
    rows = [dict(dataset="avmnist", method=m, seed=s, epoch=1, modality=mod, val_acc=1.0 if m != "alone" else 0.97)
            for m in ("concat", "sum", "film", "gated", "late", "alone") for s in (0, 1) for mod in ("audio", "image")]
    fig = viz.learning_curves(pd.DataFrame(rows), title="avmnist: per-modality validation accuracy")
    assert viz.layout_problems(fig) == [] and [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1"]
