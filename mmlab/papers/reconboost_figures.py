"""ReconBoost chapters 40-43: the figures, in the one mmlab.viz style (viz.subplots, viz.bars,
viz.tsne_grid, viz.noise_curves); each returns a figure or {name: figure} for
Chapter.save_figure(s)."""
from __future__ import annotations

from typing import Dict

import pandas as pd

from mmlab import papers, viz
from mmlab.configs.reconboost import RB_KNOBS, Studies


def _grid(s: Studies, width: float, height: float):
    """One panel per (protocol row, dataset column)."""
    return viz.subplots(len(s.protocols), len(s.datasets), width=width, height=height)


def objective(s: Studies, loss: pd.DataFrame):
    """Ch. 40: training objective per pass of the two ReconBoost forms (Figs. 5b / 6)."""
    fig, axes = _grid(s, 4.4, 3.0)
    for i, p in enumerate(s.protocols):
        for ax, n in zip(axes[i], s.datasets):
            d = loss[(loss.dataset == n) & (loss.protocol == s.label[p])]
            viz.sns.lineplot(d, x="epoch", y="train loss", hue="method", errorbar="sd", ax=ax, marker="o",
                             markersize=3, legend="auto" if ax is axes[0][-1] else False)
            ax.set_title(f"{n}, {s.label[p]}")
            ax.set_xlabel("pass over the training set")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    return fig


def dmc_vs_improvement(s: Studies, t12: pd.DataFrame):
    """Ch. 40: concat's DMC against ReconBoost's relative improvement, paper and ours (Table 12)."""
    p12 = papers.load_table("reconboost-table12")
    pt = p12[p12.column.isin(["DMC", "Relative Improvement (%)"])].pivot_table(index="dataset", columns="column",
                                                                                values="value")
    fig, axes = viz.subplots(1, 1, width=5.0, height=3.4)
    ax = axes[0][0]
    ax.scatter(pt["DMC"], pt["Relative Improvement (%)"], marker="s", color="0.5", label="paper (reported)")
    for ds, r in pt.iterrows():
        ax.annotate(ds, (r["DMC"], r["Relative Improvement (%)"]), fontsize=7, color="0.4", xytext=(4, 2),
                    textcoords="offset points")
    for i, p in enumerate(s.protocols):
        t = t12.xs(s.label[p], level="protocol")
        ax.scatter(t["dmc"], t["imp"], marker="o", color=f"C{i}", label=f"ours, {s.label[p]}")
        for ds, r in t.iterrows():
            ax.annotate(ds, (r["dmc"], r["imp"]), fontsize=7, color=f"C{i}", xytext=(4, -8),
                        textcoords="offset points")
    ax.set_xlabel("DMC of concat")
    ax.set_ylabel("relative improvement of ReconBoost (%)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def gain(s: Studies, g: pd.DataFrame):
    """Ch. 40: Acc(all) - Acc(best alone) per method (Fig. 11)."""
    fig, axes = _grid(s, 4.8, 3.2)
    for i, p in enumerate(s.protocols):
        for ax, n in zip(axes[i], s.datasets):
            viz.bars(g[(g.dataset == n) & (g.protocol == s.label[p])], x="method", y="gain", ax=ax,
                     title=f"{n}, {s.label[p]}", ylabel="Acc(all) - Acc(best alone), points")
            ax.tick_params(axis="x", rotation=60)
    return fig


def probes(s: Studies):
    """Ch. 41: linear-probe accuracy per modality and method."""
    fig, axes = _grid(s, 5.0, 3.2)
    for i, p in enumerate(s.protocols):
        for ax, n in zip(axes[i], s.datasets):
            viz.bars(s.runs[n, p][0], x="modality", y="probe", hue="method", ax=ax, title=f"{n}, {s.label[p]}",
                     ylabel="linear-probe test accuracy")
    return fig


def mir(s: Studies, mirs: pd.DataFrame):
    """Ch. 41: joint MIR per method with the unimodal MIR as a line (Fig. 5a)."""
    fig, axes = _grid(s, 4.8, 3.0)
    for i, p in enumerate(s.protocols):
        for ax, n in zip(axes[i], s.datasets):
            d = mirs[(mirs.dataset == n) & (mirs.protocol == s.label[p])]
            viz.bars(d, x="method", y="mir_mul", ax=ax, title=f"{n}, {s.label[p]}",
                     ylabel="MIR (probe accuracy ratio)")
            ax.axhline(d.mir_uni.mean(), color="0.3", ls="--", lw=1, label="unimodal MIR")
            ax.tick_params(axis="x", rotation=60)
            ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def tsne(s: Studies, rows: Dict[str, pd.DataFrame], dataset: str) -> dict:
    """Ch. 41: {"tsne-<protocol>": t-SNE grid} of the first seed (Figs. 4 / 12)."""
    out = {}
    for p, t in rows.items():
        first = min(s.runs[dataset, p][0].seed)
        out[f"tsne-{p}"] = viz.tsne_grid(
            {(r.method, r.modality): (r.xy, r.y) for r in t.itertuples()},
            title=f"{dataset}, {s.label[p]}: t-SNE of test features (seed {first})",
            scores={(r.method, r.modality): f"sil {r.silhouette:.2f}\nknn {100 * r.knn_acc:.0f}%"
                    for r in t.itertuples()})
    return out


def noise(s: Studies, rob: pd.DataFrame, shown, dataset: str = "avmnist") -> dict:
    """Ch. 42: {"noise-<protocol>": accuracy vs noise variance} (Tables 8-10 as curves)."""
    return {f"noise-{p}": viz.noise_curves(rob[(rob.protocol == s.label[p]) & rob.method.isin(shown)],
                                           title=f"{dataset}, {s.label[p]}: 50% of test samples corrupted")
            for p in s.protocols}


def sensitivity(sw: pd.DataFrame):
    """Ch. 43: accuracy against lambda (KL form) and alpha (reference form) (Fig. 7)."""
    fig, axes = viz.subplots(1, 2, width=4.6, height=3.2)
    for ax, knob in zip(axes[0], RB_KNOBS.values()):
        d = sw[sw.knob == knob]
        viz.sns.lineplot(d.assign(acc=d.fused_acc * 100, run=d.dataset + ", " + d.protocol), x="value", y="acc",
                         hue="run", errorbar="sd", marker="o", ax=ax, sort=False)
        ax.set_xlabel(knob.split()[0])
        ax.set_ylabel("test accuracy (%)")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def grs(s: Studies, fused: Dict[tuple, pd.DataFrame]):
    """Ch. 43: with vs without global rectification (Fig. 8)."""
    fig, axes = _grid(s, 3.6, 3.0)
    for i, p in enumerate(s.protocols):
        for ax, n in zip(axes[i], s.datasets):
            d = fused[n, p]
            viz.bars(d[d.method.isin(["with GRS", "w/o GRS"])], x="method", y="fused_acc", ax=ax,
                     title=f"{n}, {s.label[p]}", ylabel="test accuracy")
    return fig


def convergence(s: Studies, abl: Dict[tuple, tuple]) -> dict:
    """Ch. 43: {"<dataset>-<protocol>-convergence": per-pass accuracy and objective of the GRS
    runs, GRS passes shaded} (Fig. 9)."""
    out = {}
    for (n, p), (_, runs) in abl.items():
        grs_runs = [(c, r) for lab, c, r in runs if lab == "with GRS"]
        h = pd.DataFrame([{"seed": c.seed, "epoch": row["epoch"] + 1, "series": ser, "value": v}
                          for c, r in grs_runs for row in r.history
                          for ser, v in [("fused (val)", row["val"]["acc"]), ("train loss", row["train"]["loss"])]
                          + [(f"{m} learner (val)", a) for m, a in row["val"]["per_modality"].items()]])
        fig, axes = viz.subplots(1, 2, width=4.6, height=3.0)
        viz.sns.lineplot(h[h.series != "train loss"], x="epoch", y="value", hue="series", errorbar="sd", marker="o",
                         markersize=3, ax=axes[0][0])
        axes[0][0].set_ylabel("validation accuracy")
        axes[0][0].set_title(f"{n}, {s.label[p]}: accuracy per pass")
        axes[0][0].legend(fontsize=7, loc="lower right")
        viz.sns.lineplot(h[h.series == "train loss"], x="epoch", y="value", errorbar="sd", marker="o", markersize=3,
                         ax=axes[0][1])
        axes[0][1].set_ylabel("training objective")
        axes[0][1].set_title("objective per pass")
        opts = grs_runs[0][0].method_options
        t1, t2 = opts.get("t1", 1), opts.get("t2", 1)        # the run's passes per boosting / GRS phase
        for e in range(1, int(h.epoch.max()) + 1):
            if (e - 1) % (t1 + t2) >= t1:
                for ax in axes[0]:
                    ax.axvspan(e - 0.5, e + 0.5, color="0.92", zorder=0)
        fig.tight_layout()
        out[f"{n}-{p}-convergence"] = fig
    return out
