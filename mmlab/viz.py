"""One figure style for the whole book, and figures saved under the notebook's name.

    from mmlab import viz
    viz.use_style()
    fig, ax = viz.subplots()
    ...
    viz.save(fig, "01-modality-imbalance", "probe-vs-unimodal")   # figures/01-.../probe-vs-unimodal.png
                                                                   # + probe-vs-unimodal.layout.json

The style: constrained layout (titles, suptitles and tick labels never collide), legends outside
the data (right of a panel, or one figure legend right of a multi-panel figure), one colour per
method across the book (`method_colors`), crowded category labels wrapped and rotated
(`fit_ticklabels`), figures at most ~11 in wide so text stays legible once the book scales them to
its ~800 px text column. `layout_problems(fig)` checks all of this on the drawn figure; `save`
writes its findings beside every PNG (the book test wants none).

Jupyter Book captions come from the notebooks (mmlab.notebook.Chapter.figure).
"""
from __future__ import annotations

import io
import os
import re
import textwrap
import zlib
from pathlib import Path

import matplotlib

if not os.environ.get("DISPLAY") and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")          # headless (papermill, CI); inline backend still shows figures
import matplotlib.pyplot as plt    # noqa: E402
import numpy as np                 # noqa: E402
import seaborn as sns              # noqa: E402
from matplotlib.font_manager import FontProperties  # noqa: E402
from matplotlib.text import Text   # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from mmlab.utils import atomic_write_bytes, atomic_write_json  # noqa: E402

PALETTE = "colorblind"
SAVE_DPI = 150          # PNG resolution (use_style)
BOOK_WIDTH_PX = 800     # the book's text column: wider PNGs are scaled down to it
MIN_TEXT_PX = 7.0       # smallest legible text once scaled to the column
MAX_COLS = 3            # panels per row before bars_by wraps onto a new row


def use_style() -> None:
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": SAVE_DPI, "savefig.bbox": "tight",
                         "axes.titleweight": "bold", "axes.spines.top": False,
                         "axes.spines.right": False, "legend.frameon": False,
                         "legend.fontsize": 10, "legend.title_fontsize": 10})


def subplots(nrows: int = 1, ncols: int = 1, width: float = 4.2, height: float = 3.2, **kw):
    """plt.subplots with the book style, panels of width x height inches, axes always 2-D,
    constrained layout unless `layout=` says otherwise."""
    use_style()
    kw.setdefault("layout", "constrained")
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)
    if kw["layout"] == "constrained":          # room between panels for edge tick labels of both
        fig.get_layout_engine().set(wspace=0.05, hspace=0.04)
    return fig, axes


def figure_dir(notebook: str) -> Path:
    """figures/<notebook>/ under $MMLAB_FIGURES (set by the book build) or ./figures."""
    root = Path(os.environ.get("MMLAB_FIGURES", "figures"))
    d = root / notebook
    d.mkdir(parents=True, exist_ok=True)
    return d


def save(fig, notebook: str, name: str) -> Path:
    """Save fig as PNG under the notebook's name (atomic write) and return the path; its
    layout_problems go to <name>.layout.json beside it ({"problems": [...]}, empty when clean)."""
    problems = layout_problems(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    path = figure_dir(notebook) / f"{name}.png"
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_json({"problems": problems}, path.with_name(f"{name}.layout.json"))
    return path


# --- one colour per method -------------------------------------------------------------------
_GREY = "#4d4d4d"
METHOD_COLORS = {
    # chapters 00-01: one modality alone, a random encoder, the joint-training baselines
    "unimodal": _GREY, "alone": _GREY, "random": "#b0b0b0",
    "concat": "#0173b2", "sum": "#029e73", "film": "#ca9161", "gated": "#cc78bc", "late": "#56b4e9",
    # ReconBoost Tables 1 / 2 (mmlab.configs.reconboost.RB_MAIN) and the chapters' reference
    "G-Blending": "#b8850a", "OGM-GE": "#de8f05", "PMR": "#d55e00", "UME": "#12711c", "UMT": "#591e71",
    "ReconBoost (KL, paper)": "#8c0800", "ReconBoost (weighted CE, code)": "#e7298a", "ReconBoost": "#a23582",
    # Tables 4 / 14 (rb_fusion_variants): final rules in shades of pink, MMTM as a darker base colour
    "Ours + NA": "#fa9fb5", "Ours + LW": "#f768a1", "Ours + TMC": "#dd3497", "Ours + QMF": "#7a0177",
    "OGM-GE + MMTM": "#b1400d", "PMR + MMTM": "#592f0d", "UMT + MMTM": "#9467bd",
    # ablations (rb_ablation_variants): lambda in purples, alpha in blues, GRS, selection order
    "lam=1/4": "#9e9ac8", "lam=1/3": "#807dba", "lam=1/2": "#6a51a3", "lam=1": "#4a1486",
    "alpha=0.0": "#9ecae1", "alpha=0.1": "#6baed6", "alpha=0.5": "#3182bd", "alpha=1.0": "#08519c",
    "with GRS": "#d62728", "w/o GRS": "#949494",
    "S1 (lowest loss)": "#17becf", "S2 (highest loss)": "#bcbd22", "fixed (ours)": "#e377c2",
    # the other papers of the book
    "MLA": "#393b79", "MIE": "#637939", "ERL-MR": "#8c6d31", "QMF": "#843c39", "TMC": "#7b4173",
    "AGM": "#5254a3", "MSLR": "#8ca252", "MSES": "#bd9e39", "DOMFN": "#ad494a", "Greedy": "#a55194",
    "MMCosine": "#6b6ecf", "CentralNet": "#b5cf6b", "AE": "#e7ba52", "MMIN": "#d6616b",
}
# registered method names and the papers' row names that do not normalise to a label above
# (ERL-MR's Table 2 rows: the plain fusion, and with † the fusion with ERL-MR)
_ALIASES = {"gblend": "G-Blending", "G-Blend": "G-Blending", "Concatenation": "concat", "Summation": "sum", "Concatenation†": "ERL-MR",
            "erl_mr": "ERL-MR"}
_FALLBACK = sns.color_palette("husl", 24).as_hex()
_ALONE = ["#4d4d4d", "#7a7a7a", "#2b2b2b", "#999999"]      # "<modality> alone": greys


def _key(label) -> str:
    return re.sub(r"[^a-z0-9+=/.†]", "", str(label).lower())


_BY_KEY = {**{_key(k): v for k, v in METHOD_COLORS.items()},
           **{_key(k): METHOD_COLORS[v] for k, v in _ALIASES.items()}}


def method_colors(labels) -> dict:
    """{label: colour}, in the order given: the book's fixed colour of each method label (case,
    spaces and -/_ ignored, so "ogm_ge" is "OGM-GE"); "<modality> alone" a grey; any other label
    the colour a stable hash of its name picks, moved on to the next one another label of this
    call does not have (unknown labels taken in sorted order: the order given changes nothing)."""
    labels = list(dict.fromkeys(labels))
    out = {lab: _BY_KEY[_key(lab)] for lab in labels if _key(lab) in _BY_KEY}
    used = set(out.values())
    for lab in sorted((lab for lab in labels if lab not in out), key=str):
        pool = _ALONE if str(lab).endswith(" alone") else _FALLBACK
        i = zlib.crc32(str(lab).encode())
        out[lab] = next((c for c in pool[i % len(pool):] + pool[:i % len(pool)] if c not in used), pool[i % len(pool)])
        used.add(out[lab])
    return {lab: out[lab] for lab in labels}


def _palette(df, col):
    """Book colours when `col` holds methods, else the default palette."""
    return method_colors(df[col]) if col == "method" else None


# --- legends and labels ----------------------------------------------------------------------
def legend_right(ax, **kw) -> None:
    """The axes' legend (if it has entries) just right of the panel, outside the data."""
    handles, labels = ax.get_legend_handles_labels()
    if ax.get_legend() is not None:
        old = ax.get_legend()
        handles, labels = old.legend_handles, [t.get_text() for t in old.get_texts()]
        kw.setdefault("title", old.get_title().get_text() or None)
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, **kw)


def _take_legends(fig) -> tuple:
    """({label: handle} of every axes, first seen first, axes legends removed; their titles)."""
    entries, titles = {}, []
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is not None:
            titles.append(leg.get_title().get_text())
            pairs = zip(leg.legend_handles, [t.get_text() for t in leg.get_texts()])
            leg.remove()
        else:
            pairs = zip(*ax.get_legend_handles_labels())
        for h, lab in pairs:
            entries.setdefault(lab, h)
    return entries, titles


def figure_legend(fig, title: str | None = None, extra=()) -> None:
    """Replace every axes legend by one figure legend outside the panels, one entry per label
    (`extra`: more (handle, label) pairs): right of the panels, or below them in columns when
    its labels are long (over 30 % of the width) and the rows fit in a third of the height.
    The figure grows by the legend's size, so the panels keep theirs."""
    entries, titles = _take_legends(fig)
    entries.update({lab: h for h, lab in extra if lab not in entries})
    if not entries:
        return
    title = title if title is not None else next((t for t in titles if t), None)
    r, size = fig.canvas.get_renderer(), plt.rcParams["legend.fontsize"]
    em = size * fig.dpi / 72
    entry = max(_text_size(fig, r, lab, FontProperties(size=size))[0] for lab in entries) + 4.8 * em
    width, height = fig.get_figwidth() * fig.dpi, fig.get_figheight() * fig.dpi
    cols = int(0.95 * width // entry)
    rows = -(-len(entries) // max(cols, 1))
    right = entry <= 0.3 * width or cols < 2 or rows * 1.7 * em > 0.35 * height
    leg = fig.legend(list(entries.values()), list(entries), loc="outside right upper" if right else
                     "outside lower center", title=title, ncols=1 if right else -(-len(entries) // rows))
    bb = leg.get_window_extent(r)
    if right:
        fig.set_figwidth(fig.get_figwidth() + bb.width / fig.dpi)
    else:
        fig.set_figheight(fig.get_figheight() + bb.height / fig.dpi)


def _text_size(fig, renderer, text: str, props, linespacing: float = 1.2) -> tuple:
    """(width, height) in display px of a string as drawn unrotated with these font properties."""
    probe = Text(0, 0, text, fontproperties=props, linespacing=linespacing)
    probe.set_figure(fig)
    bb = probe.get_window_extent(renderer)
    return bb.width, bb.height


def _collide(fig, renderer, a, b, gap: float = 1.0) -> bool:
    """Whether two texts of the same rotation overlap: separating axes of their rotated boxes
    (their window-extent centres are the boxes' centres)."""
    th = np.deg2rad(a.get_rotation())
    e, n = np.array([np.cos(th), np.sin(th)]), np.array([-np.sin(th), np.cos(th)])
    ba, bb = a.get_window_extent(renderer), b.get_window_extent(renderer)
    d = np.array([bb.x0 + bb.x1 - ba.x0 - ba.x1, bb.y0 + bb.y1 - ba.y0 - ba.y1]) / 2
    (wa, ha), (wb, hb) = [_text_size(fig, renderer, t.get_text(), t.get_fontproperties(), t.get_linespacing())
                          for t in (a, b)]
    return abs(d @ e) + gap < (wa + wb) / 2 and abs(d @ n) + gap < (ha + hb) / 2


# (wrap long labels?, rotation): tried in order until neighbouring labels clear each other
_TICK_FITS = [(False, 0), (True, 0), (False, 30), (False, 45), (True, 45), (False, 60), (True, 60), (True, 90)]


def fit_ticklabels(*axes, wrap: int = 16) -> None:
    """Category labels of the x axis that would run into each other: the first of _TICK_FITS
    (wrap those longer than `wrap` characters onto lines, rotate by 0-90 degrees, anchored at
    their tick) at which neighbours clear each other. One draw for all the axes."""
    axes = [ax for ax in axes if ax.get_xticklabels()]
    if not axes:
        return
    fig = axes[0].figure
    fig.draw_without_rendering()                       # final panel widths (constrained layout)
    r = fig.canvas.get_renderer()
    for ax in axes:
        names = [t.get_text() for t in ax.get_xticklabels()]
        wrapped = [textwrap.fill(s, wrap) if len(s) > wrap else s for s in names]
        for wrap_it, angle in _TICK_FITS:
            slanted = 0 < angle < 90
            ax.tick_params(axis="x", labelrotation=angle)
            ax.set_xticks(ax.get_xticks(), wrapped if wrap_it else names, ha="right" if slanted else "center",
                          rotation_mode="anchor" if slanted else "default")
            labels = ax.get_xticklabels()              # at their ticks, as drawn
            if not any(_collide(fig, r, a, b) for a, b in zip(labels, labels[1:])):
                break


def ylabel_left(fig, axes, label: str) -> None:
    """One y label for a grid of panels: on the left panel of a single row, else beside the
    whole grid (a long label on each of several rows would run into the next row's)."""
    for ax in np.ravel(axes):
        ax.set_ylabel("")
    if len(axes) == 1:
        axes[0][0].set_ylabel(label)
    else:
        fig.supylabel(label, fontsize=plt.rcParams["axes.labelsize"])


def hide_repeated_xticklabels(axes) -> None:
    """In a grid, hide a panel's x tick labels when the panel below shows the same ones."""
    for i in range(len(axes) - 1):
        for ax, below in zip(axes[i], axes[i + 1]):
            same = [t.get_text() for t in ax.get_xticklabels()] == [t.get_text() for t in below.get_xticklabels()]
            if same and below.get_visible():
                ax.tick_params(axis="x", labelbottom=False)
                ax.set_xlabel("")


def label_points(ax, xs, ys, texts, colors, fontsize: float = 9) -> list:
    """Annotate points so that no label overlaps another label, a point or the panel's edge:
    each label takes the first free spot among _OFFSETS around its point (nearest first, a
    leader line when far; the least crowded one if none is free). Deterministic; call it once
    the panel is otherwise final. Points with a non-finite coordinate get no label."""
    fig = ax.figure
    fig.draw_without_rendering()                                   # final panel size and limits
    r = fig.canvas.get_renderer()
    pts = [(x, y, t, c) for x, y, t, c in zip(xs, ys, texts, colors) if np.isfinite(x) and np.isfinite(y)]
    half = 4 * fig.dpi / 72                                        # a marker's half size, px
    taken = [(px - half, py - half, px + half, py + half)
             for px, py in ax.transData.transform(np.array([p[:2] for p in pts]).reshape(-1, 2))]
    frame = ax.bbox.padded(-2).extents
    out = []
    for x, y, text, c in pts:
        def clash(off):
            ann = _annotation(ax, (x, y), text, c, *off, fontsize)
            bb = Text.get_window_extent(ann, r)
            ann.remove()
            return sum(_area(bb, t) for t in taken) + bb.width * bb.height - _area(bb, frame)
        off = next((o for o in _OFFSETS if clash(o) <= 0), None) or min(_OFFSETS, key=clash)
        out.append(_annotation(ax, (x, y), text, c, *off, fontsize))
        taken.append(Text.get_window_extent(out[-1], r).extents)
    return out


# label offsets (points) around a point, nearest first: right, left, above, below, diagonals, then farther
_OFFSETS = [(dx * k, dy * k) for k in (1, 2, 3.5, 5.5, 8, 12) for dx, dy in
            ((5, 0), (-5, 0), (0, 6), (0, -6), (5, 5), (-5, 5), (5, -5), (-5, -5))]


def _annotation(ax, xy, text, color, dx, dy, fontsize):
    ha = "left" if dx > 0 else "right" if dx < 0 else "center"
    va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
    arrow = dict(arrowstyle="-", color=color, lw=0.6, shrinkA=0, shrinkB=3) if max(abs(dx), abs(dy)) > 7 else None
    ann = ax.annotate(text, xy, xytext=(dx, dy), textcoords="offset points", ha=ha, va=va, fontsize=fontsize,
                      color=color, arrowprops=arrow)
    ann.set_in_layout(False)                   # placed inside the panel: never moves the layout
    ann.update_positions(ax.figure.canvas.get_renderer())      # its text where it will be drawn
    return ann


def _area(bb, ext) -> float:
    """Area of the intersection of bbox bb with extents (x0, y0, x1, y1)."""
    w = min(bb.x1, ext[2]) - max(bb.x0, ext[0])
    h = min(bb.y1, ext[3]) - max(bb.y0, ext[1])
    return max(w, 0) * max(h, 0)


# --- layout check ----------------------------------------------------------------------------
def _overlap(a, b, tol: float = 1.0) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > tol and min(a.y1, b.y1) - max(a.y0, b.y0) > tol


def _desc(t) -> str:
    s = " ".join(t.get_text().split())
    return repr(s if len(s) <= 40 else s[:37] + "...")


def _shown(texts) -> list:
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def _ticklabels(axis) -> list:
    """The tick labels the axis draws: those of major ticks inside the view interval."""
    lo, hi = sorted(axis.get_view_interval())
    eps = 1e-9 * max(1.0, abs(hi - lo))
    locs = axis.get_majorticklocs()
    return _shown(lab for loc, tick in zip(locs, axis.get_major_ticks(len(locs))) if lo - eps <= loc <= hi + eps
                  for lab in (tick.label1, tick.label2))


def _panel(name: str, area, texts, ticks, notes, r) -> dict:
    """One panel as the check sees it: its name, plot area (display bbox, None for the figure's
    own texts), (text, box) pairs, tick label rows, annotations, and the box around it all."""
    texts = [(t, Text.get_window_extent(t, r)) for t in texts]
    boxes = [bb for _, bb in texts] + ([area] if area is not None else [])
    return {"name": name, "area": area, "texts": texts, "ticks": ticks, "notes": notes,
            "box": Bbox.union(boxes) if boxes else None}


def _panels(fig, r) -> list:
    """Every visible axes (titles, annotations, axis labels, offset texts, drawn tick labels),
    then the figure's own texts (suptitle, fig.text) as one more panel without a plot area."""
    out = []
    for i, ax in enumerate(a for a in fig.axes if a.get_visible()):
        title = " ".join(ax.get_title(loc) for loc in ("left", "center", "right")).strip()
        ticks = [_ticklabels(a) for a in (ax.xaxis, ax.yaxis)] if ax.axison else [[], []]
        texts = [c for c in ax.get_children() if isinstance(c, Text)]
        if ax.axison:
            texts += [ax.xaxis.label, ax.yaxis.label, ax.xaxis.get_offset_text(), ax.yaxis.get_offset_text()]
        out.append(_panel(f"panel {i + 1}" + (f" {title!r}" if title else ""), ax.bbox if ax.axison else None,
                          _shown(texts) + ticks[0] + ticks[1], ticks, _shown(ax.texts), r))
    return out + [_panel("the figure", None, _shown(fig.texts), [], [], r)]


def _legends(fig) -> list:
    return [leg for leg in [*fig.legends, *(ax.get_legend() for ax in fig.axes)] if leg is not None
            and leg.get_visible()]


def _across(panels) -> list:
    """Text of one panel on another panel's plot area or texts."""
    out = []
    for i, p in enumerate(panels):
        for q in panels[i + 1:]:
            if p["box"] is not None and q["box"] is not None and not _overlap(p["box"], q["box"]):
                continue                                          # far apart: nothing to compare
            for a, b in ((p, q), (q, p)):
                if b["area"] is not None:
                    out += [f"{_desc(t)} of {a['name']} runs into the plot area of {b['name']}"
                            for t, bb in a["texts"] if _overlap(bb, b["area"])]
            out += [f"{_desc(s)} of {p['name']} overlaps {_desc(t)} of {q['name']}" for s, sb in p["texts"]
                    for t, tb in q["texts"] if _overlap(sb, tb)]
    return out


def _within(fig, panels, r) -> list:
    """Annotations of one panel on each other; tick labels of one axis on each other."""
    out = []
    for p in panels:
        notes = [(t, Text.get_window_extent(t, r)) for t in p["notes"]]
        out += [f"annotations {_desc(a)} and {_desc(b)} of {p['name']} overlap" for i, (a, ab) in enumerate(notes)
                for b, bb in notes[i + 1:] if _overlap(ab, bb)]
        for row in p["ticks"]:
            out += [f"tick labels {_desc(a)} and {_desc(b)} of {p['name']} overlap" for a, b in zip(row, row[1:])
                    if a.get_rotation() == b.get_rotation() and _collide(fig, r, a, b)]
    return out


def _on_legends(fig, panels, r) -> list:
    """Legends on a plot area, on any text, or on each other."""
    out, legs = [], _legends(fig)
    for i, leg in enumerate(legs):
        bb, name = leg.get_window_extent(r), _legend_name(leg)
        out += [f"legend {name} overlaps the plot area of {p['name']}" for p in panels
                if p["area"] is not None and _overlap(bb, p["area"])]
        out += [f"legend {name} overlaps {_desc(t)} of {p['name']}" for p in panels for t, tb in p["texts"]
                if _overlap(bb, tb)]
        out += [f"legends {name} and {_legend_name(o)} overlap" for o in legs[i + 1:]
                if _overlap(bb, o.get_window_extent(r))]
    return out


def _legend_name(leg) -> str:
    title = leg.get_title().get_text()
    return repr(title) if title else "of " + ", ".join(t.get_text() for t in leg.get_texts()[:3])


def _small_text(fig, panels, r) -> list:
    """Texts under MIN_TEXT_PX once the saved PNG (tight bbox, SAVE_DPI) is scaled to the book's
    column; one line per font size."""
    width = (fig.get_tightbbox(r).width + 2 * plt.rcParams["savefig.pad_inches"]) * SAVE_DPI
    scale = min(1.0, BOOK_WIDTH_PX / width)
    texts = [t for p in panels for t, _ in p["texts"]]
    texts += [t for leg in _legends(fig) for t in _shown([*leg.get_texts(), leg.get_title()])]
    small = {}
    for t in texts:
        px = t.get_fontsize() * SAVE_DPI / 72 * scale
        if px < MIN_TEXT_PX:
            small.setdefault(t.get_fontsize(), []).append(t)
    return [f"{len(ts)} text(s) at {pt:g} pt, e.g. {_desc(ts[0])}, render at "
            f"{pt * SAVE_DPI / 72 * scale:.1f} px < {MIN_TEXT_PX:g} px once the {width:.0f} px wide figure "
            f"is scaled to the book's {BOOK_WIDTH_PX} px column" for pt, ts in sorted(small.items())]


def layout_problems(fig) -> list:
    """Draw fig and list what a reader would find illegible, one line each (empty when clean):
    a legend on a plot area, a text or another legend; text of one panel (title, tick or axis
    labels, annotations) on another panel's area or texts, the suptitle on a panel's texts;
    annotations on each other; tick labels of one axis on each other; text under MIN_TEXT_PX
    once the PNG is scaled to the book's BOOK_WIDTH_PX text column. Deterministic."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    panels = _panels(fig, r)
    problems = _across(panels) + _within(fig, panels, r) + _on_legends(fig, panels, r)
    return list(dict.fromkeys(problems + _small_text(fig, panels, r)))


# --- dataset tours (chapter 00) ------------------------------------------------------------
def _first_per_class(data, n_classes: int):
    """Index of the first sample of each class in an MMData split."""
    y = data.y.numpy()
    return [int((y == c).nonzero()[0][0]) for c in range(n_classes) if (y == c).any()]


def show_images(splits, modalities, n: int = 10, title: str = ""):
    """One row per (split, modality): the first sample of each class, train vs test."""
    rows = [(s, m) for s in ("train", "test") for m in modalities]
    fig, axes = subplots(len(rows), n, width=0.95, height=1.05)
    for r, (split, m) in enumerate(rows):
        data = getattr(splits, split)
        for c, i in enumerate(_first_per_class(data, n)):
            img = data.x[m][i].numpy().transpose(1, 2, 0).clip(0, 1)      # [H, W, C]
            ax = axes[r][c]
            ax.imshow(img.squeeze(-1) if img.shape[-1] == 1 else img, cmap="gray")
            if c == 0:
                ax.set_ylabel(f"{split}\n{m}", fontsize=9)
            if r == 0:
                ax.set_title(str(int(data.y[i])), fontsize=10)
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
        ax.grid(False)
    if title:
        fig.suptitle(title)
    return fig


def show_sequences(splits, modality: str, n: int = 4, kind: str = "heatmap", channel_names=None):
    """MFCC heatmaps (kind='heatmap') or multichannel traces (kind='lines') of n classes."""
    data = splits.train
    idx = _first_per_class(data, splits.info.num_classes)[:n]
    fig, axes = subplots(1, len(idx), width=2.5, height=2.4, sharey=kind == "heatmap")
    for ax, i in zip(axes[0], idx):
        x = data.x[modality][i].numpy()                                      # [T, C]
        if kind == "heatmap":
            ax.imshow(x.T, aspect="auto", origin="lower", cmap="magma")
            ax.grid(False)
        else:
            for c in range(x.shape[1]):
                ax.plot(x[:, c], lw=0.8, label=(channel_names or [None] * x.shape[1])[c])
        ax.set_xlabel("frame")
        ax.set_title(f"{modality}: {splits.info.class_names[int(data.y[i])]}", fontsize=10)
    if kind == "heatmap":
        axes[0][0].set_ylabel("coefficient")
    if kind == "lines" and channel_names:
        figure_legend(fig, title="channel")
    return fig


def show_class_means(splits, title: str = ""):
    """Per-view heatmap of class-mean (standardised) features: how separable each view looks."""
    mods = splits.info.modality_names
    fig, axes = subplots(1, len(mods), width=3.0, height=2.6)
    for ax, m in zip(axes[0], mods):
        x, y = splits.train.x[m].numpy(), splits.train.y.numpy()
        means = [x[y == c].mean(0) for c in range(splits.info.num_classes)]
        ax.imshow(means, aspect="auto", cmap="coolwarm", vmin=-1.5, vmax=1.5)
        ax.set_title(f"{m} ({x.shape[1]} dims)", fontsize=10)
        ax.set_xlabel("feature"), ax.set_ylabel("class" if ax is axes[0][0] else "")
        ax.grid(False)
    if title:
        fig.suptitle(title)
    return fig


def class_balance(splits):
    """Bar chart of class counts per split (legend right of the panel)."""
    import pandas as pd
    rows = [{"split": s, "class": splits.info.class_names[int(c)], "count": int(n)}
            for s in ("train", "val", "test")
            for c, n in zip(*np.unique(getattr(splits, s).y.numpy(), return_counts=True))]
    fig, axes = subplots(1, 1, width=6.0, height=2.6)
    ax = axes[0][0]
    sns.barplot(pd.DataFrame(rows), x="class", y="count", hue="split", ax=ax)
    ax.set_title(f"{splits.info.name}: samples per class")
    legend_right(ax)
    fit_ticklabels(ax)
    return fig


# --- results (chapters 01+) -----------------------------------------------------------------
def bars(df, x: str, y: str, hue: str | None = None, title: str = "", ylabel: str = "test accuracy", ax=None,
         width: float = 6.0):
    """Mean over seeds with the std as error bars (one bar per x/hue; hue=None: one per x).
    Methods keep their book colour (method_colors) whether they are the hue or the x; the hue
    legend sits right of the panel. Given `ax`, the caller finishes the figure (figure_legend,
    fit_ticklabels); without, bars() makes and finishes its own."""
    own = ax is None
    if own:
        ax = subplots(1, 1, width=width, height=3.0)[1][0][0]
    colour = hue if hue is not None else x if x == "method" else None
    sns.barplot(df, x=x, y=y, hue=colour, palette=_palette(df, colour) if colour else None, legend=hue is not None,
                errorbar="sd", ax=ax, capsize=0.1, err_kws={"linewidth": 1}, saturation=1)
    ax.set_title(title), ax.set_ylabel(ylabel), ax.set_xlabel("")
    if hue is not None:
        legend_right(ax)
    if own:
        fit_ticklabels(ax)
    return ax.figure


def _grid_shape(n: int) -> tuple:
    cols = n if n <= MAX_COLS else 2 if n == 4 else MAX_COLS
    return -(-n // cols), cols


def bars_by(df, col: str, x: str, y: str, hue: str | None = None, ylabel: str = "test accuracy",
            width: float = 4.4, height: float = 3.2):
    """bars() in one panel per value of `col` (first-seen order, at most MAX_COLS per row; 4 as
    2 x 2), titled by the value; one legend for the figure."""
    panels = list(dict.fromkeys(df[col]))
    nrows, ncols = _grid_shape(len(panels))
    fig, axes = subplots(nrows, ncols, width=width, height=height)
    for k, ax in enumerate(axes.flat):
        if k >= len(panels):
            ax.remove()
            continue
        bars(df[df[col] == panels[k]], x=x, y=y, hue=hue, ax=ax, title=str(panels[k]), ylabel="")
    ylabel_left(fig, axes, ylabel)
    figure_legend(fig)
    fit_ticklabels(*fig.axes)
    return fig


def learning_curves(hist, title: str = ""):
    """Validation accuracy per epoch, one panel per modality, one line per method
    (mean over seeds, band = std). `hist` is mmlab.studies.history_frame(...)."""
    mods = list(dict.fromkeys(hist["modality"]))
    fig, axes = subplots(1, len(mods), width=3.3, height=2.8, sharey=True)
    colors = method_colors(hist["method"])
    for ax, m in zip(axes[0], mods):
        sns.lineplot(hist[hist["modality"] == m], x="epoch", y="val_acc", hue="method", errorbar="sd",
                     palette=colors, ax=ax, marker="o", markersize=3)
        ax.set_title(m), ax.set_ylabel("val accuracy (per modality)" if ax is axes[0][0] else "")
        epochs = sorted(hist["epoch"].unique())
        if len(epochs) <= 10:                 # few epochs (smoke: one) get a tick each
            ax.set_xticks(epochs), ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    lo, hi = hist["val_acc"].min(), hist["val_acc"].max()
    pad = max(0.02, 0.1 * (hi - lo))           # a flat curve (one epoch, smoke) gets a readable range
    axes[0][0].set_ylim(max(0.0, lo - pad), min(1.0, hi + pad) if hi < 1.0 else 1.0 + pad / 4)
    figure_legend(fig)
    if title:
        fig.suptitle(title)
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
            ax.text(0.02, 0.02, scores[(r, c)], transform=ax.transAxes, fontsize=8, va="bottom",
                    bbox=dict(facecolor="white", alpha=0.7, lw=0, pad=1))
    for i, ax_row in enumerate(axes):
        for j, ax in enumerate(ax_row):
            ax.set_xticks([]), ax.set_yticks([])
            ax.grid(False)
            if i == 0:
                ax.set_title(str(cols[j]), fontsize=10)
            if j == 0:
                ax.set_ylabel(str(rows[i]), fontsize=10)
    handles, labels = next(ax for row in axes for ax in row if ax.collections).get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", markerscale=2.5, title="class")
    if title:
        fig.suptitle(title)
    return fig


def noise_curves(df, x: str = "variance", y: str = "acc", hue: str = "method", col: str = "case",
                 title: str = "", ylabel: str = "test accuracy"):
    """Accuracy vs noise variance: one panel per `col` value (corruption case), one line per
    `hue` value (method), mean over repeated rows (seeds) with the std as a band.
    `df` is mmlab.analysis.robustness.robustness_grid output with a method column added."""
    cases = list(dict.fromkeys(df[col]))
    fig, axes = subplots(1, len(cases), width=3.3, height=2.8, sharey=True)
    for ax, case in zip(axes[0], cases):
        sns.lineplot(df[df[col] == case], x=x, y=y, hue=hue, errorbar="sd", ax=ax, marker="o",
                     palette=_palette(df, hue), markersize=4)
        ax.set_title(str(case)), ax.set_xlabel("noise variance $\\sigma^2$")
        ax.set_ylabel(ylabel if ax is axes[0][0] else "")
    figure_legend(fig)
    if title:
        fig.suptitle(title)
    return fig
