"""One figure style for the whole book, and figures saved under the notebook's name.

    from mmlab import viz
    viz.use_style()
    fig, ax = viz.subplots()
    ...
    viz.save(fig, "01-modality-imbalance", "probe-vs-unimodal")   # figures/01-.../probe-vs-unimodal.png

Jupyter Book captions come from the code cell's `mystnb.figure` metadata (set in the
notebooks), so the same figure renders with a numbered caption in the HTML book.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib

if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")          # headless (papermill, CI); inline backend still shows figures
import matplotlib.pyplot as plt    # noqa: E402
import seaborn as sns              # noqa: E402

from mmlab.utils import atomic_write_bytes  # noqa: E402

PALETTE = "colorblind"


def use_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "axes.titleweight": "bold", "axes.spines.top": False,
                         "axes.spines.right": False, "legend.frameon": False})


def subplots(nrows: int = 1, ncols: int = 1, width: float = 4.2, height: float = 3.2, **kw):
    use_style()
    return plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)


def figure_dir(notebook: str) -> Path:
    """figures/<notebook>/ under $MMLAB_FIGURES (set by the book build) or ./figures."""
    root = Path(os.environ.get("MMLAB_FIGURES", "figures"))
    d = root / notebook
    d.mkdir(parents=True, exist_ok=True)
    return d


def save(fig, notebook: str, name: str) -> Path:
    """Save fig as PNG under the notebook's name (atomic write) and return the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    path = figure_dir(notebook) / f"{name}.png"
    atomic_write_bytes(path, buf.getvalue())
    return path


# --- dataset tours (chapter 00) ------------------------------------------------------------
def _first_per_class(data, n_classes: int):
    """Index of the first sample of each class in an MMData split."""
    y = data.y.numpy()
    return [int((y == c).nonzero()[0][0]) for c in range(n_classes) if (y == c).any()]


def show_images(splits, modalities, n: int = 10, title: str = ""):
    """One row per (split, modality): the first sample of each class, train vs test."""
    rows = [(s, m) for s in ("train", "test") for m in modalities]
    fig, axes = subplots(len(rows), n, width=1.0, height=1.1)
    for r, (split, m) in enumerate(rows):
        data = getattr(splits, split)
        for c, i in enumerate(_first_per_class(data, n)):
            img = data.x[m][i].numpy().transpose(1, 2, 0).clip(0, 1)      # [H, W, C]
            ax = axes[r][c]
            ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray")
            ax.set_xticks([]), ax.set_yticks([])
            ax.grid(False)
            if c == 0:
                ax.set_ylabel(f"{split}\n{m}", fontsize=8)
            if r == 0:
                ax.set_title(str(int(data.y[i])), fontsize=9)
    fig.suptitle(title, y=1.04)
    return fig


def show_sequences(splits, modality: str, n: int = 4, kind: str = "heatmap", channel_names=None):
    """MFCC heatmaps (kind='heatmap') or multichannel traces (kind='lines') of n classes."""
    data = splits.train
    idx = _first_per_class(data, splits.info.num_classes)[:n]
    fig, axes = subplots(1, len(idx), width=3.0, height=2.4)
    for ax, i in zip(axes[0], idx):
        x = data.x[modality][i].numpy()                                      # [T, C]
        if kind == "heatmap":
            ax.imshow(x.T, aspect="auto", origin="lower", cmap="magma")
            ax.set_ylabel("coefficient")
            ax.grid(False)
        else:
            for c in range(x.shape[1]):
                ax.plot(x[:, c], lw=0.8, label=(channel_names or [None] * x.shape[1])[c])
        ax.set_xlabel("frame")
        ax.set_title(f"{modality}: {splits.info.class_names[int(data.y[i])]}", fontsize=9)
    if kind == "lines" and channel_names:
        axes[0][-1].legend(fontsize=7)
    return fig


def show_class_means(splits, title: str = ""):
    """Per-view heatmap of class-mean (standardised) features: how separable each view looks."""
    mods = splits.info.modality_names
    fig, axes = subplots(1, len(mods), width=3.2, height=2.6)
    for ax, m in zip(axes[0], mods):
        x, y = splits.train.x[m].numpy(), splits.train.y.numpy()
        means = [x[y == c].mean(0) for c in range(splits.info.num_classes)]
        ax.imshow(means, aspect="auto", cmap="coolwarm", vmin=-1.5, vmax=1.5)
        ax.set_title(f"{m} ({x.shape[1]} dims)", fontsize=9)
        ax.set_xlabel("feature"), ax.set_ylabel("class")
        ax.grid(False)
    fig.suptitle(title)
    return fig


def class_balance(splits):
    """Bar chart of class counts per split."""
    import pandas as pd
    rows = [{"split": s, "class": splits.info.class_names[int(c)], "count": int(n)}
            for s in ("train", "val", "test")
            for c, n in zip(*__import__("numpy").unique(getattr(splits, s).y.numpy(), return_counts=True))]
    fig, axes = subplots(1, 1, width=6.0, height=2.6)
    sns.barplot(pd.DataFrame(rows), x="class", y="count", hue="split", ax=axes[0][0])
    axes[0][0].set_title(f"{splits.info.name}: samples per class")
    return fig


# --- results (chapters 01+) -----------------------------------------------------------------
def bars(df, x: str, y: str, hue: str | None = None, title: str = "", ylabel: str = "test accuracy", ax=None,
         width: float = 6.0):
    """Mean over seeds with the std as error bars (one bar per x/hue; hue=None: one per x)."""
    if ax is None:
        fig, axes = subplots(1, 1, width=width, height=3.0)
        ax = axes[0][0]
    sns.barplot(df, x=x, y=y, hue=hue, errorbar="sd", ax=ax, capsize=0.1, err_kws={"linewidth": 1})
    ax.set_title(title), ax.set_ylabel(ylabel), ax.set_xlabel("")
    if hue is not None and df[hue].nunique() > 4:      # many bars: keep the legend off them
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    elif hue is not None:
        ax.legend(fontsize=8, loc="lower right")
    return ax.figure


def bars_by(df, col: str, x: str, y: str, hue: str | None = None, ylabel: str = "test accuracy",
            width: float = 4.4, height: float = 3.2):
    """bars() in one panel per value of `col` (first-seen order), titled by the value."""
    panels = list(dict.fromkeys(df[col]))
    fig, axes = subplots(1, len(panels), width=width, height=height)
    for ax, v in zip(axes[0], panels):
        bars(df[df[col] == v], x=x, y=y, hue=hue, ax=ax, title=str(v), ylabel=ylabel)
    return fig


def learning_curves(hist, title: str = ""):
    """Validation accuracy per epoch, one panel per modality, one line per method
    (mean over seeds, band = std). `hist` is mmlab.studies.history_frame(...)."""
    mods = list(dict.fromkeys(hist["modality"]))
    fig, axes = subplots(1, len(mods), width=3.6, height=2.8, sharey=True)
    for ax, m in zip(axes[0], mods):
        sns.lineplot(hist[hist["modality"] == m], x="epoch", y="val_acc", hue="method", errorbar="sd",
                     ax=ax, marker="o", markersize=3)
        ax.set_title(m), ax.set_ylabel("val accuracy (per modality)")
        ax.legend(fontsize=7)
    fig.suptitle(title, y=1.04)
    return fig


# --- embeddings and robustness ---------------------------------------------------------------
def tsne_grid(embeddings, class_names=None, title: str = "", scores=None, size: float = 2.6,
              point_size: float = 4.0):
    """One t-SNE panel per (row, column) key of `embeddings`: {(method, modality): (xy [n, 2],
    labels [n])}. Rows and columns keep first-seen order; missing pairs are left blank.
    Points are coloured by class with one shared categorical palette and a single legend;
    axis ticks are hidden (t-SNE coordinates carry no meaning). `scores` (optional,
    {(row, col): text}) is printed in the panel corner, e.g. the silhouette / k-NN accuracy
    from mmlab.analysis.embed.cluster_scores that back the picture."""
    import numpy as np
    rows = list(dict.fromkeys(r for r, _ in embeddings))
    cols = list(dict.fromkeys(c for _, c in embeddings))
    classes = np.unique(np.concatenate([np.asarray(lab) for _, lab in embeddings.values()]))
    colors = dict(zip(classes, sns.color_palette(PALETTE if len(classes) <= 10 else "husl", len(classes))))
    fig, axes = subplots(len(rows), len(cols), width=size, height=size, layout="constrained")
    for (r, c), (xy, lab) in embeddings.items():
        ax = axes[rows.index(r)][cols.index(c)]
        lab = np.asarray(lab)
        for k in classes:
            pts = np.asarray(xy)[lab == k]
            ax.scatter(pts[:, 0], pts[:, 1], s=point_size, color=colors[k], linewidths=0, alpha=0.8,
                       label=str(class_names[int(k)]) if class_names is not None else str(k))
        if scores and (r, c) in scores:
            ax.text(0.02, 0.02, scores[(r, c)], transform=ax.transAxes, fontsize=7, va="bottom")
    for i, ax_row in enumerate(axes):
        for j, ax in enumerate(ax_row):
            ax.set_xticks([]), ax.set_yticks([])
            ax.grid(False)
            if i == 0:
                ax.set_title(str(cols[j]), fontsize=9)
            if j == 0:
                ax.set_ylabel(str(rows[i]), fontsize=9)
    handles, labels = next(ax for row in axes for ax in row if ax.collections).get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               markerscale=2.5, title="class")
    fig.suptitle(title)
    return fig


def noise_curves(df, x: str = "variance", y: str = "acc", hue: str = "method", col: str = "case",
                 title: str = "", ylabel: str = "test accuracy"):
    """Accuracy vs noise variance: one panel per `col` value (corruption case), one line per
    `hue` value (method), mean over repeated rows (seeds) with the std as a band.
    `df` is mmlab.analysis.robustness.robustness_grid output with a method column added."""
    cases = list(dict.fromkeys(df[col]))
    fig, axes = subplots(1, len(cases), width=3.6, height=2.8, sharey=True)
    for ax, case in zip(axes[0], cases):
        sns.lineplot(df[df[col] == case], x=x, y=y, hue=hue, errorbar="sd", ax=ax, marker="o",
                     markersize=4)
        ax.set_title(str(case)), ax.set_xlabel("noise variance $\\sigma^2$"), ax.set_ylabel(ylabel)
        ax.legend(fontsize=7)
    fig.suptitle(title, y=1.04)
    return fig
