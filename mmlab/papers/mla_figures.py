"""MLA chapters 30-32: the figures, in the one mmlab.viz style; each returns a figure or
{name: figure} for Chapter.figure(s)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mmlab import papers, viz
from mmlab.configs.mla import MLA_MISSING_METHODS


def missing(mf: pd.DataFrame, dataset: str):
    """Tables 2 / 6 as curves: test accuracy against the missing rate, ours (left, mean ± sd over
    seeds) and the paper's (right, IEMOCAP, reported)."""
    rep = papers.load_table("mla-table2")
    rep = rep[rep.method.isin(MLA_MISSING_METHODS)]
    rep = rep.assign(**{"missing rate": rep.column.str.extract(r"(\d+)%")[0].astype(float) / 100, "acc": rep.value / 100})
    both = pd.concat([mf.assign(panel=f"ours ({dataset})"), rep.assign(panel="reported (IEMOCAP)", seed=0)])
    fig = viz.noise_curves(both[["panel", "method", "missing rate", "seed", "acc"]], x="missing rate", y="acc",
                           hue="method", col="panel")
    for ax in fig.axes[:2]:
        ax.set_xlabel("missing rate η (train, val and test)")
    return fig


def isolation(iso: pd.DataFrame):
    """Fig. 2: each modality's own test accuracy as a growing share of one modality's training
    data is missing; one panel per masked modality, a line per method and evaluated modality."""
    d = iso.assign(line=iso.method + ": " + iso.modality + " acc",
                   masked=iso.masked + " missing in train")
    fig = viz.noise_curves(d, x="ratio", y="acc", hue="line", col="masked", ylabel="own test accuracy")
    for ax in fig.axes[:d.masked.nunique()]:
        ax.set_xlabel("share of train without it")
    return fig


def gap_view(rows: pd.DataFrame, labels=("concat", "MLA"), seed: int = 0, max_pairs: int = 150):
    """Fig. 3: the first two modalities' normalised test embeddings in one PCA plane per method
    (seed `seed`), paired samples joined, with the gap (distance of the centroids) in the title."""
    fig, axes = viz.subplots(1, len(labels), width=3.3, height=3.2)
    for ax, lab in zip(axes[0], labels):
        r = rows[(rows.method == lab) & (rows.seed == seed)].iloc[0]
        (a, xa), (b, xb) = list(r.pca.items())[:2]
        k = min(max_pairs, len(xa))
        ax.plot(np.stack([xa[:k, 0], xb[:k, 0]]), np.stack([xa[:k, 1], xb[:k, 1]]), color="0.8", lw=0.4, zorder=1)
        ax.scatter(xa[:, 0], xa[:, 1], s=5, color="C0", label=a, zorder=2)
        ax.scatter(xb[:, 0], xb[:, 1], s=5, color="C3", label=b, zorder=2)
        ax.set_title(f"{lab}: gap {r.gaps[f'{a}|{b}']:.2f}")
        ax.set_xticks([]), ax.set_yticks([])
    viz.figure_legend(fig, title="modality")
    return fig


def gap_over_epochs(history: pd.DataFrame):
    """The modality gap on the validation split after each epoch, per method (mean ± sd over seeds)."""
    fig = viz.noise_curves(history.assign(panel=history.pair), x="epoch", y="gap", hue="method", col="panel",
                           ylabel="modality gap (val)")
    for ax in fig.axes[:history.pair.nunique()]:
        ax.set_xlabel("epoch")
    return fig


def modalities(studies: dict):
    """Table 1 as bars: each modality's own test accuracy inside every Table 1 model, one panel
    per (dataset, protocol) (mean ± sd over seeds)."""
    from mmlab.configs.mla import MLA_MAIN, MLA_PROTOCOLS
    frames = [frame[frame.method.isin(MLA_MAIN)].assign(panel=f"{n}, {MLA_PROTOCOLS[p].label}")
              for (n, p), (frame, _) in studies.items()]
    return viz.bars_by(pd.concat(frames), "panel", x="modality", y="per_modality_acc", hue="method",
                       ylabel="own test accuracy of the modality")
