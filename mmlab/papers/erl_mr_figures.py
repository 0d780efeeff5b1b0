"""ERL-MR chapters 10-11: the figures, in the one mmlab.viz style; each returns a figure."""
from __future__ import annotations

import pandas as pd

from mmlab import viz


def gains(rows: pd.DataFrame, paper: pd.DataFrame):
    """ERL-MR's gain in fused test accuracy per fusion (bars: ours, mean ± sd over seeds; one panel
    per stand-in and protocol), with the paper's gains on the family's datasets as black marks."""
    fig = viz.bars_by(rows.assign(points=100 * rows.gain), col="panel", x="fusion", y="points",
                      ylabel="accuracy gain with ERL-MR (points)", width=3.6, height=3.0)
    markers = dict(zip(dict.fromkeys(paper["paper dataset"]), "osD^vP"))      # one marker per paper dataset
    for ax, panel in zip(fig.axes, dict.fromkeys(rows.panel)):
        ax.axhline(0, color="0.3", lw=0.8)
        order = [t.get_text() for t in ax.get_xticklabels()]
        for ds, g in paper[paper.panel == panel].groupby("paper dataset", sort=False):
            xs = [order.index(f) for f in g.fusion]
            ax.plot(xs, g.gain, markers[ds], color="black", ms=5, ls="", label=f"paper (reported): {ds}")
    viz.figure_legend(fig)
    return fig


def training_curves(hf: pd.DataFrame, dataset: str):
    """Fig. 2: each modality's own validation accuracy (and the fused one) after every pass,
    without and with ERL-MR (mean ± sd over seeds), one panel per modality."""
    d = hf[hf.dataset == dataset]
    fig = viz.noise_curves(d, x="epoch", y="acc", hue="method", col="panel", ylabel="validation accuracy")
    for ax in fig.axes:
        if ax.get_xlabel():
            ax.set_xlabel("pass over train")
    return fig



def baselines(rows: pd.DataFrame):
    """Table 3: fused test accuracy of each rebalancing method and ERL-MR, one panel per fusion
    (mean ± sd over seeds; a method keeps its colour across panels)."""
    return viz.bars_by(rows, col="panel", x="method", y="acc", width=3.6, height=3.0)
