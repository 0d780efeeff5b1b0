"""What every book notebook does at its start and end, so notebooks stay declarative.

    ch = Chapter("01-modality-imbalance", profile=profile, device=device)
    ...                                   # studies, tables, figures
    ch.figure(fig, "probes", "Linear-probe accuracy ...", paper="ReconBoost Table 5")
    ch.ledger.check(...)                  # the paper claims this notebook tests
    ch.track(results)                     # config hashes for provenance
    ch.finish()                           # saves the ledger, shows the provenance table

A Chapter also sets the book's one table style for every DataFrame the notebook displays
(`table_html`: "—" for missing values, numbers at a readable precision, no meaningless 0..n
index) and, in the smoke profile, shows a banner saying its numbers are not meaningful.
"""
from __future__ import annotations

import math
import numbers
import os
import platform
import subprocess
import time
from pathlib import Path

import pandas as pd

import mmlab
from mmlab import viz
from mmlab.utils import select_device

ROOT = Path(__file__).resolve().parents[1]


def git_sha() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# HTML, not a MyST directive: a notebook's Markdown outputs are not parsed for directives
SMOKE_BANNER = ('<div class="admonition warning mmlab-smoke"><p class="admonition-title">Smoke build</p>'
                "<p>Every number on this page comes from seconds-long runs on a few hundred samples "
                "(profile <code>smoke</code>, what CI executes): the numbers, figures and verdicts are not "
                "meaningful. Build with <code>make book</code> for the quick profile.</p></div>")


def use_environment(plugins=None, data_root: str = None, executor: str = None) -> None:
    """A notebook's `plugins` / `data_root` / `executor` parameters, for it and for every worker it
    starts: plugin modules imported and named in $MMLAB_PLUGINS (mmlab.plugins), $MMLAB_DATA
    (where the papers' own datasets are read from) and $MMLAB_EXECUTOR (mmlab.executors: "local"
    or a Dask scheduler address). None leaves the environment as it is."""
    from mmlab.plugins import load_plugins
    if isinstance(plugins, str):          # papermill -p passes text: '["a.b", "c"]' or 'a.b,c'
        import ast
        plugins = ast.literal_eval(plugins) if plugins.lstrip().startswith("[") else \
            [p for p in plugins.replace(",", " ").split() if p]
    if plugins:
        load_plugins(plugins)
    if data_root:
        if not Path(data_root).expanduser().is_dir():
            raise FileNotFoundError(f"data_root {data_root!r} is not a folder; pass the folder holding "
                                    f"your copies of the papers' datasets (see the book's introduction)")
        os.environ["MMLAB_DATA"] = str(Path(data_root).expanduser().resolve())
    if executor:
        os.environ["MMLAB_EXECUTOR"] = executor


class Chapter:
    def __init__(self, name: str, profile: str = "quick", device: str = "auto", plugins=None,
                 data_root: str = None, executor: str = None):
        from mmlab.claims import Ledger
        use_environment(plugins, data_root, executor)
        self.name, self.profile, self.device = name, profile, device
        self.t0 = time.perf_counter()
        self.ledger = Ledger(name, profile)
        self.hashes: dict = {}
        self.n_figures = 0
        viz.use_style()
        use_table_style()
        if profile == "smoke":
            from IPython.display import HTML, display
            display(HTML(SMOKE_BANNER))

    @property
    def number(self) -> str:
        """The chapter number, the notebook name's leading digits ("40" of "40-reconboost-accuracy")."""
        return self.name.split("-", 1)[0]

    def figure(self, fig, name: str, caption: str, paper: str = "") -> None:
        """Save `fig` (figures/<notebook>/<name>.png, with its layout check) and show it with a
        caption numbered in the book's own scheme ("Figure 40.2"); `paper` names the paper
        artifact it stands for ("ReconBoost Fig. 7"), printed apart from the book's number."""
        import matplotlib.pyplot as plt
        from IPython.display import Image, display
        path = viz.save(fig, self.name, name)
        plt.close(fig)
        self.n_figures += 1
        ref = f" *Paper: {paper}.*" if paper else ""
        display(Image(data=path.read_bytes()))
        _display_markdown(f"**Figure {self.number}.{self.n_figures}.** {caption}{ref}")

    def figures(self, figs: dict, caption: str, paper: str = "") -> None:
        """figure() for each {name: figure}, the name appended to the caption."""
        for name, fig in figs.items():
            self.figure(fig, name, f"{caption} ({name})", paper)

    def claims(self) -> None:
        """Show this chapter's claims: verdict counts, the claims table (mmlab.report), the
        claims left untested, and, for claims tested under several protocols, the verdicts
        side by side per protocol."""
        from IPython.display import display
        from mmlab import report
        display(report.chapter_claims(self.ledger))
        if self.ledger.claims and any(c.protocol for c in self.ledger.claims):
            _display_markdown("**Verdicts per protocol**")
            display(report.protocol_verdicts(self.ledger.to_frame()))

    def track(self, results) -> None:
        """Record the config hash of each mmlab Result used (or a study DataFrame)."""
        if isinstance(results, pd.DataFrame):
            for _, r in results.drop_duplicates("config_hash").iterrows():
                self.hashes[r["config_hash"]] = f"{r['dataset']}/{r['method']}/seed{r['seed']}"
        else:
            for r in results:
                c = r.config
                self.hashes[r.config_hash] = f"{c['dataset']}/{c['method']}/seed{c['seed']}"

    def track_all(self, items) -> None:
        """track() each of several Result lists or study frames."""
        for results in items:
            self.track(results)

    def provenance(self) -> pd.DataFrame:
        rows = {"notebook": self.name, "git SHA": git_sha(), "mmlab version": mmlab.utils.code_version(),
                "profile": self.profile, "device": str(select_device(self.device)),
                "python / torch": f"{platform.python_version()} / {__import__('torch').__version__}",
                "runs (config hashes)": f"{len(self.hashes)}: " + ", ".join(sorted(self.hashes)[:6])
                + (" ..." if len(self.hashes) > 6 else ""),
                "wall time": f"{time.perf_counter() - self.t0:.1f} s"}
        return pd.DataFrame({"value": rows})

    def finish(self) -> pd.DataFrame:
        claims_dir = os.environ.get("MMLAB_CLAIMS")
        if claims_dir:
            self.ledger.save(claims_dir)
        return self.provenance()


def _display_markdown(text: str) -> None:
    from IPython.display import Markdown, display
    display(Markdown(text))


def _cell(x) -> str:
    """One table cell as the book prints it: "—" for a missing value, integers as such,
    other numbers with three significant digits (one decimal from 100 up)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    if isinstance(x, bool) or not isinstance(x, numbers.Number):
        return str(x)
    if isinstance(x, numbers.Integral) or (float(x).is_integer() and abs(x) < 1e6):
        return str(int(x))
    return f"{x:.1f}" if abs(x) >= 100 else f"{x:.3g}"


def table_html(df: pd.DataFrame) -> str:
    """The book's table style (HTML): cells by _cell, a default 0..n index hidden, class
    "dataframe mmlab-table" for the book's CSS."""
    sty = df.style.format(_cell).format_index(_cell, axis=0).format_index(_cell, axis=1)
    if isinstance(df.index, pd.RangeIndex):
        sty = sty.hide(axis="index")
    return sty.set_table_attributes('class="dataframe mmlab-table"').to_html()


def use_table_style() -> None:
    """Render every DataFrame displayed in this kernel with table_html (IPython's formatter)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is not None:
        ip.display_formatter.formatters["text/html"].for_type(pd.DataFrame, table_html)


def show(tables: dict, note: str = "") -> None:
    """Display each {markdown title: table} pair (a None or empty table is skipped), or `note` when
    there is nothing to show."""
    from IPython.display import Markdown, display
    shown = [(t, v) for t, v in tables.items() if v is not None and len(v)]
    for title, table in shown:
        display(Markdown(title), table)
    if not shown and note:
        display(Markdown(note))


def or_note(table, note: str):
    """The table, or a Markdown note when it is empty or None (e.g. "No run diverged.")."""
    from IPython.display import Markdown
    return table if table is not None and len(table) else Markdown(note)
