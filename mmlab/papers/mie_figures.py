"""MIE chapters 20-21: the figures, in the one mmlab.viz style; each returns a figure."""
from __future__ import annotations

import numpy as np
import pandas as pd

from mmlab import viz


def directions(ph: pd.DataFrame):
    """Fig. 3: validation accuracy after every modality phase, interactive GM vs one direction
    only (mean ± sd over seeds); the phase's trained modality on the x axis."""
    order = ph.drop_duplicates("phase").set_index("phase").trained
    cycle = list(dict.fromkeys(order))
    fig = viz.noise_curves(ph.assign(panel="after each modality phase"), x="phase", y="acc", hue="method",
                           col="panel", ylabel="validation accuracy (fused)")
    ax = fig.axes[0]
    ax.set_xticks(order.index)
    ax.set_xlabel("phase (" + ", ".join(f"{i + 1}: {m}" for i, m in enumerate(cycle)) + ", then repeating)")
    return fig


def sensitivity(sf: pd.DataFrame):
    """Fig. 4: test accuracy and mAP against tau (log axis) and rho (symmetric log: rho = 0, no
    SAM, at the origin; the paper's 1e-15 / 1e-10 below float32 resolution of the weights)."""
    long = sf.melt(["parameter", "value", "seed"], ["acc", "map"], var_name="metric", value_name="score")
    long["metric"] = long.metric.map({"acc": "accuracy", "map": "mAP"})
    fig = viz.noise_curves(long, x="value", y="score", hue="metric", col="parameter", ylabel="test score")
    for ax, par in zip(fig.axes, dict.fromkeys(long.parameter)):
        if par == "tau":
            ax.set_xscale("log"), ax.set_xlabel("τ (scaling factor of Eq. 7)")
        else:
            ax.set_xscale("symlog", linthresh=1e-16), ax.set_xlabel("ρ (SAM radius; 0 = SAM off)")
            ax.set_xticks([0, 1e-10, 1e-1])
    return fig


def _grid(lf: pd.DataFrame, models: dict, seed: int):
    mods = list(dict.fromkeys(lf.modality))
    pick = {(t, m): lf[(lf.method == t) & (lf.modality == m) & (lf.seed == seed)].iloc[0]
            for t in models for m in mods}
    hi = float(np.quantile(np.concatenate([r["loss"].ravel() for r in pick.values()]), 0.95))
    lo = float(min(r["loss"].min() for r in pick.values()))
    return mods, pick, lo, hi


def landscape_contours(lf: pd.DataFrame, models: dict, seed: int = 0):
    """Figs. 5 / 6 as contours: a row per modality, a column per model (seed `seed`), one colour
    scale for all panels (clipped at the 95th percentile of every panel's losses)."""
    mods, pick, lo, hi = _grid(lf, models, seed)
    fig, axes = viz.subplots(len(mods), len(models), width=2.6, height=2.4, sharex=True, sharey=True)
    levels = np.linspace(lo, hi, 15)
    for i, m in enumerate(mods):
        for j, t in enumerate(models):
            r, ax = pick[t, m], axes[i][j]
            cs = ax.contourf(r["coords"], r["coords"], np.clip(r["loss"].T, lo, hi), levels=levels, cmap="viridis")
            ax.plot(0, 0, "w+", ms=8)
            ax.set_title(f"{t}, {m}\nmean rise {r['sharpness']:.3g}", fontsize=10)
            ax.set_xlabel("α (direction 1)" if i == len(mods) - 1 else "")
            ax.set_ylabel("β (direction 2)" if j == 0 else "")
    fig.colorbar(cs, ax=axes, shrink=0.8, label="training loss (cross-entropy)")
    return fig


def landscape_surfaces(lf: pd.DataFrame, models: dict, seed: int = 0):
    """Figs. 5 / 6 as surfaces, same grid and colour scale as the contours."""
    import matplotlib.pyplot as plt
    mods, pick, lo, hi = _grid(lf, models, seed)
    viz.use_style()
    fig = plt.figure(figsize=(2.6 * len(models), 2.5 * len(mods)), layout="constrained")
    for i, m in enumerate(mods):
        for j, t in enumerate(models):
            r = pick[t, m]
            ax = fig.add_subplot(len(mods), len(models), i * len(models) + j + 1, projection="3d")
            a, b = np.meshgrid(r["coords"], r["coords"], indexing="ij")
            ax.plot_surface(a, b, np.clip(r["loss"], lo, hi), cmap="viridis", vmin=lo, vmax=hi, linewidth=0)
            ax.set_zlim(lo, hi)
            ax.set_title(f"{t}, {m}", fontsize=10)
            ax.tick_params(labelsize=7, pad=0)
    return fig
