"""What every book notebook does at its start and end, so notebooks stay declarative.

    ch = Chapter("01-modality-imbalance", profile=profile, device=device)
    ...                                   # studies, tables, figures
    ch.save_figure(fig, "probe-vs-unimodal")
    ch.ledger.check(...)                  # the paper claims this notebook tests
    ch.track(results)                     # config hashes for provenance
    ch.finish()                           # saves the ledger, shows the provenance table
"""
from __future__ import annotations

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


class Chapter:
    def __init__(self, name: str, profile: str = "quick", device: str = "auto"):
        from mmlab.claims import Ledger
        self.name, self.profile, self.device = name, profile, device
        self.t0 = time.perf_counter()
        self.ledger = Ledger(name, profile)
        self.hashes: dict = {}
        viz.use_style()

    def save_figure(self, fig, name: str) -> Path:
        return viz.save(fig, self.name, name)

    def save_figures(self, figs: dict) -> list:
        """save_figure for each {name: figure}, in order."""
        return [self.save_figure(fig, name) for name, fig in figs.items()]

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
