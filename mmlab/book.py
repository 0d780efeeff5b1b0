"""Build the book: execute the notebooks with papermill, then Jupyter Book 1.x to HTML.

    python -m mmlab.book --profile quick              # what `make book` runs
    python -m mmlab.book --profile smoke --nb notebooks/01-modality-imbalance.ipynb
    python -m mmlab.book -p seeds "[0, 1]" -p device cpu

Source notebooks in notebooks/ are never written to: each is executed into
_build/src/notebooks/ (a staging copy of the book with _config.yml, _toc.yml and book/),
and Jupyter Book renders that copy with its own execution off. Results come from
mmlab.run's cache, so a second build re-executes quickly. Figures go to
_build/src/figures/<notebook>/, claims ledgers to _build/claims/, timings to
_build/timings.json. A failing notebook stops the build naming the notebook, the cell
and the error.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from mmlab.utils import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("smoke", "quick", "full")


class NotebookFailed(RuntimeError):
    pass


def toc_files(toc_path: Path) -> list:
    """Every file named in a Jupyter Book _toc.yml, in reading order (no suffix)."""
    toc = yaml.safe_load(toc_path.read_text())
    out = [toc["root"]]

    def walk(node):
        for key in ("chapters", "sections"):
            for item in node.get(key, []) or []:
                if "file" in item:
                    out.append(item["file"])
                walk(item)
        for part in node.get("parts", []) or []:
            walk(part)
    walk(toc)
    return out


def toc_notebooks(root: Path = ROOT) -> list:
    return [root / f"{f}.ipynb" for f in toc_files(root / "_toc.yml") if (root / f"{f}.ipynb").exists()]


def execute(nb: Path, out: Path, parameters: dict, cwd: Path) -> float:
    """Run one notebook with papermill; raise NotebookFailed naming the cell and the error."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(str(nb), str(out), parameters=parameters, cwd=str(cwd),
                            progress_bar=False, kernel_name="python3")
    except PapermillExecutionError as e:
        src = "\n    ".join(str(e.source).splitlines()[:12])
        raise NotebookFailed(f"notebook {nb.name} failed in cell {e.cell_index} "
                             f"(execution count {e.exec_count}): {e.ename}: {e.evalue}\n"
                             f"  cell source:\n    {src}\n  executed copy with the traceback: {out}") from None
    return time.perf_counter() - t0


def stage(build: Path) -> Path:
    """Copy the book's sources (config, toc, markdown chapters) into build/src."""
    src = build / "src"
    (src / "notebooks").mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "book", src / "book", dirs_exist_ok=True)
    return src


def render_ledger_markdown(df, profile: str = "", left_out: int = 0) -> str:
    """The claims page: the rule, verdict counts, and per notebook one row per claim with the
    paper's reported numbers behind it and the p-value that decided the verdict."""
    from mmlab.claims import RULE, verdict_counts
    lines = ["# Claims ledger", "",
             "Every paper claim the notebooks test, with the verdict computed from this build's "
             f"per-seed results (profile **{profile or 'unknown'}**). *Effect* is the mean ± std over seeds of "
             "the per-seed difference named in *measure*, in its own unit (accuracies as fractions: "
             "0.05 = 5 points). *Reported* gives the paper's own numbers behind the claim, for the "
             "dataset family our stand-in represents; a claim is tested only where they show it.", "",
             "```{admonition} The verdict rule", RULE, "```", ""]
    if left_out:
        lines += [f"({left_out} ledger(s) recorded under another profile are left out.)", ""]
    if len(df) == 0:
        return "\n".join(lines + ["No claims were tested in this build."])
    counts = verdict_counts(df)
    lines += [", ".join(f"**{v}**: {n}" for v, n in counts.items()), ""]
    for nb, g in df.groupby("notebook", sort=False):
        lines += [f"## {nb}", "",
                  "| claim | paper (source) | reported | our dataset | protocol | measure | effect | n | deciding p | verdict |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in g.itertuples():
            effect = f"{r.mean:+.3f} ± {r.std:.3f}" if r.n > 1 else f"{r.mean:+.3f}"
            lines.append(f"| {r.statement} | {r.paper} ({r.source}) | {r.reported or '—'} | {r.dataset} "
                         f"| {r.protocol or '—'} | {r.measure} | {effect} | {r.n} | {r.deciding_p} | **{r.verdict}** |")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_claims_page(build: Path, src: Path, profile: str = "") -> None:
    """book/claims.md in the staging copy, generated from the ledgers of this build's profile."""
    from mmlab.claims import Ledger
    d = build / "claims"
    df = Ledger.load_all(d, profile=profile)
    left_out = sum(Ledger.load(p).profile != profile for p in d.glob("[!.]*.json")) if d.is_dir() else 0
    (src / "book" / "claims.md").write_text(render_ledger_markdown(df, profile, left_out))


def build_html(src: Path, build: Path) -> Path:
    cmd = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(src),
           "--path-output", str(build.parent), "--builder", "html"]
    if not Path(cmd[0]).exists():
        cmd[0:1] = [sys.executable, "-m", "jupyter_book"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return build / "html"


def build(profile: str = "quick", notebooks=None, params=None, build_dir: Path = ROOT / "_build",
          html: bool = True) -> dict:
    """Execute the toc's notebooks (or only `notebooks`) and build the HTML; returns timings."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; use one of {PROFILES}")
    build_dir = Path(build_dir).resolve()
    src = stage(build_dir)
    os.environ["MMLAB_FIGURES"] = str(src / "figures")
    os.environ["MMLAB_CLAIMS"] = str(build_dir / "claims")
    if not notebooks:      # a full build: no ledger of an earlier build (or profile) survives
        shutil.rmtree(build_dir / "claims", ignore_errors=True)
    os.environ["MMLAB_PROFILE"] = profile
    all_nbs = toc_notebooks()
    chosen = [Path(n).resolve() for n in notebooks] if notebooks else all_nbs
    for nb in chosen:
        if nb not in all_nbs:
            raise ValueError(f"{nb} is not listed in _toc.yml; listed: {[n.name for n in all_nbs]}")
    timings = {}
    for nb in all_nbs:
        out = src / "notebooks" / nb.name
        if nb in chosen:
            print(f"executing {nb.name} (profile {profile}) ...", flush=True)
            timings[nb.name] = execute(nb, out, {"profile": profile, **(params or {})}, src / "notebooks")
            print(f"  {nb.name}: {timings[nb.name]:.1f} s", flush=True)
        elif not out.exists():   # not run this time and never run: render the source as is
            shutil.copy2(nb, out)
    atomic_write_json({"profile": profile, "seconds": timings}, build_dir / "timings.json")
    write_claims_page(build_dir, src, profile)
    if html:
        path = build_html(src, build_dir)
        print(f"HTML book: {path / 'index.html'}")
    for name, s in timings.items():
        print(f"  {s:8.1f} s  {name}")
    print(f"  {sum(timings.values()):8.1f} s  total")
    return timings


def _param(text: str):
    return yaml.safe_load(text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mmlab.book")
    p.add_argument("--profile", default=os.environ.get("PROFILE", "quick"), choices=PROFILES)
    p.add_argument("--nb", action="append", help="execute only this notebook (repeatable)")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="papermill parameter passed to every executed notebook (YAML value)")
    p.add_argument("--build-dir", default=str(ROOT / "_build"))
    p.add_argument("--no-html", action="store_true")
    a = p.parse_args(argv)
    try:
        build(a.profile, a.nb, {k: _param(v) for k, v in a.param}, Path(a.build_dir), html=not a.no_html)
    except (NotebookFailed, RuntimeError, ValueError) as e:
        print(f"book build failed: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
