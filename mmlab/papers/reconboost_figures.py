"""ReconBoost chapters 40-43: the figures, in the one mmlab.viz style (viz.subplots, viz.bars,
viz.tsne_grid, viz.noise_curves; methods in their book colours, one legend right of the
panels); each returns a figure or {name: figure} for Chapter.figure(s)."""
from __future__ import annotations

from typing import Dict

import pandas as pd
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from mmlab import papers, viz
from mmlab.configs.reconboost import RB_KNOBS, Studies


def _grid(s: Studies, width: float, height: float):
    """One panel per (protocol row, dataset column)."""
    return viz.subplots(len(s.protocols), len(s.datasets), width=width, height=height)


def _method_bars(s: Studies, fig, axes, d_of, y: str, ylabel: str) -> None:
    """viz.bars of one bar per method (book colours) per (protocol, dataset) panel; the y label
    on the left column, x labels only where the panel below does not repeat them."""
    for i, p in enumerate(s.protocols):
        for ax, n in zip(axes[i], s.datasets):
            viz.bars(d_of(n, p), x="method", y=y, ax=ax, title=f"{n}, {s.label[p]}")
    viz.ylabel_left(fig, axes, ylabel)
    viz.hide_repeated_xticklabels(axes)
    viz.figure_legend(fig)
    viz.fit_ticklabels(*fig.axes)


def objective(s: Studies, loss: pd.DataFrame):
    """Ch. 40: training objective per pass of the two ReconBoost forms (Figs. 5b / 6)."""
    fig, axes = _grid(s, 3.6, 2.8)
    colors = viz.method_colors(loss.method)
    for i, p in enumerate(s.protocols):
        for ax, n in zip(axes[i], s.datasets):
            d = loss[(loss.dataset == n) & (loss.protocol == s.label[p])]
            viz.sns.lineplot(d, x="epoch", y="train loss", hue="method", palette=colors, errorbar="sd", ax=ax,
                             marker="o", markersize=3)
            ax.set_title(f"{n}, {s.label[p]}")
            ax.set_xlabel("pass over the training set" if i == len(s.protocols) - 1 else "")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    viz.ylabel_left(fig, axes, "train loss")
    viz.figure_legend(fig)
    return fig


def dmc_vs_improvement(s: Studies, t12: pd.DataFrame):
    """Ch. 40: concat's DMC against ReconBoost's relative improvement, paper and ours (Table 12);
    each point named by its dataset, the names placed clear of each other (viz.label_points)."""
    p12 = papers.load_table("reconboost-table12")
    pt = p12[p12.column.isin(["DMC", "Relative Improvement (%)"])].pivot_table(index="dataset", columns="column",
                                                                                values="value")
    fig, axes = viz.subplots(1, 1, width=5.6, height=3.8)
    ax = axes[0][0]
    ax.scatter(pt["DMC"], pt["Relative Improvement (%)"], marker="s", color="0.5", label="paper (reported)")
    xs, ys, names, colors = list(pt["DMC"]), list(pt["Relative Improvement (%)"]), list(pt.index), ["0.35"] * len(pt)
    for i, p in enumerate(s.protocols):
        t = t12.xs(s.label[p], level="protocol")
        ax.scatter(t["dmc"], t["imp"], marker="o", color=f"C{i}", label=f"ours, {s.label[p]}")
        xs, ys, names, colors = xs + list(t["dmc"]), ys + list(t["imp"]), names + list(t.index), \
            colors + [f"C{i}"] * len(t)
    ax.set_xlabel("DMC of concat")
    ax.set_ylabel("relative improvement\nof ReconBoost (%)")
    ax.margins(0.12)                                  # room for the names inside the panel
    viz.legend_right(ax)
    viz.label_points(ax, xs, ys, names, colors)
    return fig


def gain(s: Studies, g: pd.DataFrame):
    """Ch. 40: Acc(all) - Acc(best alone) per method (Fig. 11)."""
    fig, axes = _grid(s, 4.2, 2.9)
    _method_bars(s, fig, axes, lambda n, p: g[(g.dataset == n) & (g.protocol == s.label[p])], "gain",
                 "Acc(all) − Acc(best alone), points")
    return fig


def probes(s: Studies):
    """Ch. 41: linear-probe accuracy per modality and method."""
    fig, axes = _grid(s, 4.2, 2.9)
    for i, p in enumerate(s.protocols):
        for ax, n in zip(axes[i], s.datasets):
            viz.bars(s.runs[n, p][0], x="modality", y="probe", hue="method", ax=ax, title=f"{n}, {s.label[p]}")
    viz.ylabel_left(fig, axes, "linear-probe test accuracy")
    viz.figure_legend(fig)
    return fig


def mir(s: Studies, mirs: pd.DataFrame):
    """Ch. 41: joint MIR per method with the unimodal MIR as a line (Fig. 5a)."""
    fig, axes = _grid(s, 4.2, 2.9)

    def panel(n, p):
        return mirs[(mirs.dataset == n) & (mirs.protocol == s.label[p])]
    for i, p in enumerate(s.protocols):
        for ax, n in zip(axes[i], s.datasets):
            ax.axhline(panel(n, p).mir_uni.mean(), color="0.3", ls="--", lw=1, label="unimodal MIR", zorder=3)
    _method_bars(s, fig, axes, panel, "mir_mul", "MIR (probe accuracy ratio)")
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
    fig, axes = viz.subplots(1, 2, width=3.8, height=3.0)
    for ax, knob in zip(axes[0], RB_KNOBS.values()):
        d = sw[sw.knob == knob]
        viz.sns.lineplot(d.assign(acc=d.fused_acc * 100, run=d.dataset + ", " + d.protocol), x="value", y="acc",
                         hue="run", errorbar="sd", marker="o", ax=ax, sort=False)
        ax.set_xlabel(knob.split()[0])
        ax.set_ylabel("test accuracy (%)")
    viz.figure_legend(fig)
    return fig


def grs(s: Studies, fused: Dict[tuple, pd.DataFrame]):
    """Ch. 43: with vs without global rectification (Fig. 8)."""
    fig, axes = _grid(s, 3.4, 2.8)

    def panel(n, p):
        d = fused[n, p]
        return d[d.method.isin(["with GRS", "w/o GRS"])]
    _method_bars(s, fig, axes, panel, "fused_acc", "test accuracy")
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
        fig, axes = viz.subplots(1, 2, width=3.8, height=2.9)
        viz.sns.lineplot(h[h.series != "train loss"], x="epoch", y="value", hue="series", errorbar="sd", marker="o",
                         markersize=3, ax=axes[0][0])
        axes[0][0].set_ylabel("validation accuracy")
        axes[0][0].set_title("accuracy per pass")
        viz.sns.lineplot(h[h.series == "train loss"], x="epoch", y="value", errorbar="sd", marker="o", markersize=3,
                         ax=axes[0][1])
        axes[0][1].set_ylabel("training objective")
        axes[0][1].set_title("objective per pass")
        fig.suptitle(f"{n}, {s.label[p]}")
        opts = grs_runs[0][0].method_options
        t1, t2 = opts.get("t1", 1), opts.get("t2", 1)        # the run's passes per boosting / GRS phase
        shaded = [e for e in range(1, int(h.epoch.max()) + 1) if (e - 1) % (t1 + t2) >= t1]
        for e in shaded:
            for ax in axes[0]:
                ax.axvspan(e - 0.5, e + 0.5, color="0.92", zorder=0)
        for ax in axes[0]:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        viz.figure_legend(fig, extra=[(Patch(color="0.92"), "GRS pass (shaded)")] if shaded else ())
        out[f"{n}-{p}-convergence"] = fig
    return out
