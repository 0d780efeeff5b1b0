"""What a reader sees of the claims: verdict badges, claims tables, a chapter's "Claims tested
here" section, the claims page, and the intro's reproducibility scoreboard, method standings
and chapter list.

Everything here returns HTML, or MyST Markdown whose HTML blocks hold no blank line (MyST
passes such a block through whole; a blank line would end it). The book's CSS for the classes
used here is book/_static/mmlab.css. Nothing here trains or reads results: the inputs are the
claims ledgers (:mod:`mmlab.claims`) and the book's sources.

>>> badge("reproduced")
'<span class="mmlab-badge mmlab-reproduced">reproduced</span>'
"""
from __future__ import annotations

import hashlib
import html
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mmlab.claims import STANDING_KEY, VERDICTS, Ledger, format_effect

__all__ = ["badge", "claims_table", "chapter_claims", "claims_page", "scoreboard", "standings_tables",
           "chapter_list", "render_intro", "load_build", "artifact_ids", "smoke_banner", "MARKERS", "PAPERS"]

UNTESTED = "untested"
SHORT = {"reproduced": "R", "not reproduced": "NR", "inconclusive": "I"}
PAPERS = {0: "Shared", 1: "ERL-MR", 2: "MIE", 3: "MLA", 4: "ReconBoost"}     # chapter decade -> paper
DATASETS = ("cgm", "avmnist", "watch", "mfeat", "synthetic")                # column order of the scoreboard
MARKERS = {"banner": "<!-- mmlab:banner -->", "scoreboard": "<!-- mmlab:scoreboard -->",
           "chapters": "<!-- mmlab:chapters -->"}
CLAIMS_PAGE = "claims.html"            # the claims page, relative to the intro (both in book/)
CHAPTER_HREF = "../notebooks/{}.html"  # a chapter, relative to the claims page (book/claims.html)
CHAPTER_DOC = "../notebooks/{}"        # a chapter as a MyST {doc} target from book/intro.md
# Opens the artifact group a link points at (claims.html#<id>): a <details> is closed otherwise.
OPEN_TARGET = ("<script>(function(){function o(){var h=decodeURIComponent(location.hash.slice(1));"
               "var e=h&&document.getElementById(h);if(e&&e.tagName==='DETAILS'){e.open=true;}}"
               "window.addEventListener('hashchange',o);document.addEventListener('DOMContentLoaded',o);})();"
               "</script>")


def _e(x) -> str:
    """HTML-escaped text on one line (a newline would end a MyST HTML block at a blank line)."""
    return html.escape(" ".join(str(x).split()))


def _css(verdict: str) -> str:
    return "mmlab-" + verdict.replace(" ", "-")


def badge(verdict: str, label: str | None = None) -> str:
    """A colour-coded badge for a verdict (reproduced green, not reproduced red, inconclusive
    amber, untested grey) with a class per verdict and a text label (colour is never the only
    carrier); `label` replaces the text, e.g. "3 reproduced"."""
    if verdict not in (*VERDICTS, UNTESTED):
        raise ValueError(f"unknown verdict {verdict!r}; expected one of {(*VERDICTS, UNTESTED)}")
    return f'<span class="mmlab-badge {_css(verdict)}">{_e(label if label is not None else verdict)}</span>'


def count_badges(verdicts, untested: int = 0, zeros: bool = True) -> str:
    """Badges "N verdict" for a sequence of verdicts (every verdict, or the non-zero ones)."""
    counts = pd.Series(list(verdicts), dtype=object).value_counts()
    items = [(v, int(counts.get(v, 0))) for v in VERDICTS] + ([(UNTESTED, untested)] if untested else [])
    return " ".join(badge(v, f"{n} {v}") for v, n in items if n or zeros)


def _natural(text: str) -> tuple:
    """Sort key reading digit runs as numbers ("Table 5" before "Table 11")."""
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(text)))


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "artifact"


def artifact_ids(df: pd.DataFrame) -> dict:
    """{(paper, source): id} for every artifact of the claims frame: the slug of paper +
    artifact ("reconboost-tables-1-2-sec-4-2"); artifacts whose slugs collide get a hash suffix
    of their own text, so ids stay unique and do not depend on the order of the claims."""
    pairs = sorted({(str(p), str(s)) for p, s in zip(df["paper"], df["source"])}) if len(df) else []
    slugs = {pair: _slug(f"{pair[0]} {pair[1]}") for pair in pairs}
    clash = pd.Series(list(slugs.values()), dtype=object).value_counts()
    return {pair: s if clash[s] == 1 else f"{s}-{hashlib.sha1(repr(pair).encode()).hexdigest()[:6]}"
            for pair, s in slugs.items()}


def _paper_key(paper: str) -> tuple:
    order = list(PAPERS.values())
    return (order.index(paper) if paper in order else len(order), paper)


def _dataset_key(dataset: str) -> tuple:
    return (DATASETS.index(dataset) if dataset in DATASETS else len(DATASETS), dataset)


def artifact_groups(df: pd.DataFrame) -> list:
    """[(paper, [(artifact, id, claims of that artifact), ...]), ...]: papers in PAPERS order,
    artifacts in reading order (first chapter that tests them, then natural order)."""
    if len(df) == 0:
        return []
    ids = artifact_ids(df)
    out = []
    for paper in sorted(df["paper"].unique(), key=_paper_key):
        p = df[df["paper"] == paper]
        first = p.groupby("source")["notebook"].min()
        sources = sorted(first.index, key=lambda s: (first[s], _natural(s)))
        out.append((paper, [(s, ids[paper, s], p[p["source"] == s]) for s in sources]))
    return out


# --- claims tables ---------------------------------------------------------------------------
_CLAIM_COLS = (("claim", "mmlab-c-claim"), ("our dataset", "mmlab-c-dataset"), ("protocol", "mmlab-c-protocol"),
               ("effect (mean ± sd)", "mmlab-c-effect"), ("deciding p", "mmlab-c-p"), ("n", "mmlab-c-n"),
               ("verdict", "mmlab-c-verdict"))


def _p_cell(deciding_p: str) -> str:
    """The labelled deciding p-value(s) of Claim.deciding_p, one per line (a line breaks only
    before the number)."""
    return "<br>".join(_e(part).replace(" = ", "&nbsp;= ").replace(" &lt; 0", "&nbsp;&lt; 0")
                       for part in str(deciding_p).split(", "))


def _effect_cell(mean, std, n, unit: str) -> str:
    """format_effect's text, breaking (if at all) only between the mean and '± sd unit'."""
    return _e(format_effect(mean, std, n, unit)).replace("± ", "±&nbsp;").replace(" pts", "&nbsp;pts")


def _claim_row(r: dict) -> str:
    """One claims-table row: the statement with d's definition and the paper's numbers under it."""
    unit = r.get("unit") or "points"
    claim = (f'<span class="mmlab-statement">{_e(r["statement"])}</span>'
             f'<span class="mmlab-measure">d = {_e(r["measure"])}</span>'
             + (f'<span class="mmlab-reported">reported: {_e(r["reported"])}</span>' if r.get("reported") else ""))
    cells = [claim, _e(r["dataset"]), _e(r.get("protocol") or "—"),
             _effect_cell(r["mean"], r["std"], int(r["n"]), unit), _p_cell(r["deciding_p"]),
             str(int(r["n"])), badge(r["verdict"])]
    return "<tr>" + "".join(f'<td class="{c}">{x}</td>' for x, (_, c) in zip(cells, _CLAIM_COLS)) + "</tr>"


def claims_table(claims_df: pd.DataFrame) -> str:
    """An HTML table with one row per claim (a frame of Ledger.to_frame / Ledger.load_all):
    statement (d's definition and the paper's reported numbers under it in small text), our
    dataset, protocol, effect ± sd in the claim's unit, the deciding p-value as Claim.deciding_p
    labels it, n and the verdict badge, last. Fixed layout at 100 % of the text column."""
    head = "".join(f'<th class="{c}" scope="col">{_e(t)}</th>' for t, c in _CLAIM_COLS)
    cols = "".join(f'<col class="{c}">' for _, c in _CLAIM_COLS)
    rows = [_claim_row(r) for r in claims_df.to_dict("records")]
    return (f'<table class="mmlab-claims-table">\n<colgroup>{cols}</colgroup>\n<thead><tr>{head}</tr></thead>\n'
            "<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>")


def untested_table(untested: dict) -> str:
    """The claims a ledger left untested (Ledger.untested): statement, our dataset, protocol and
    the paper's numbers that do not show the claim on every dataset of the family."""
    rows = []
    for entry in untested.values():
        reported = next((v for k, v in entry.items() if k.startswith("reported")), "")
        rows.append(f'<tr><td>{_e(entry.get("statement", ""))}</td><td>{_e(entry.get("dataset", ""))}</td>'
                    f'<td>{_e(entry.get("protocol") or "—")}</td><td class="mmlab-reported">{_e(reported)}</td></tr>')
    return ('<table class="mmlab-claims-table mmlab-untested-table">\n<colgroup><col class="mmlab-u-claim">'
            '<col class="mmlab-c-dataset"><col class="mmlab-c-protocol"><col class="mmlab-u-reported"></colgroup>\n'
            '<thead><tr><th scope="col">claim</th><th scope="col">our dataset</th><th scope="col">protocol</th>'
            '<th scope="col">the paper reports</th></tr></thead>\n<tbody>\n' + "\n".join(rows) + "\n</tbody>\n</table>")


def chapter_claims(ledger: Ledger):
    """What a chapter shows under "Claims tested here": the counts per verdict, the claims
    table, and the claims left untested (the paper's own numbers do not show them for the
    dataset family) in a collapsed <details>. Returns IPython.display.HTML."""
    from IPython.display import HTML
    df = ledger.to_frame()
    parts = ['<div class="mmlab-claims">',
             f'<p class="mmlab-counts">{count_badges(df["verdict"], len(ledger.untested))}</p>',
             claims_table(df) if len(df) else "<p>No claim was tested in this chapter.</p>"]
    if ledger.untested:
        n = len(ledger.untested)
        parts += ['<details class="mmlab-untested">',
                  f"<summary>{badge(UNTESTED, f'{n} untested')} {'claim' if n == 1 else 'claims'} the paper "
                  "does not make for the dataset family our stand-in represents (its own numbers do not show "
                  "them there)</summary>", untested_table(ledger.untested), "</details>"]
    return HTML("\n".join(parts + ["</div>"]))


def protocol_verdicts(claims_df: pd.DataFrame):
    """Claims tested under several protocols ('<base>@<protocol>' ids), one row per claim and
    dataset with a badge per protocol, rows whose verdict changes with the protocol first and
    marked; with a one-line summary. Returns IPython.display.HTML ("" when no claim has a
    protocol)."""
    from IPython.display import HTML
    from mmlab.claims import by_protocol
    t = by_protocol(claims_df[claims_df["protocol"].fillna("") != ""]) if len(claims_df) else pd.DataFrame()
    if not len(t):
        return HTML("")
    protos = [c for c in t.columns if c != "changes"]
    t = t.sort_values("changes", ascending=False, kind="stable")
    head = "".join(f"<th>{_e(p)}</th>" for p in protos)
    rows = [f'<tr class="{"mmlab-changes" if r["changes"] else ""}"><td>{_e(statement)}'
            f'{" <em>(changes with the protocol)</em>" if r["changes"] else ""}</td><td>{_e(dataset)}</td>'
            + "".join(f"<td>{badge(r[p]) if isinstance(r[p], str) else '—'}</td>" for p in protos) + "</tr>"
            for (_, dataset, statement), r in t.iterrows()]
    n = int(t["changes"].sum())
    summary = f"<p>{n} of {len(t)} verdicts change with the protocol.</p>"
    return HTML(summary + '<table class="mmlab-claims-table mmlab-protocols"><thead><tr><th>claim</th>'
                f"<th>our dataset</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


# --- the claims page -------------------------------------------------------------------------
def smoke_banner(profile: str) -> str:
    """A visible MyST admonition on pages of a smoke build ("" for any other profile)."""
    if profile != "smoke":
        return ""
    return ("```{admonition} Smoke build: every number here comes from seconds-long runs and is not meaningful\n"
            ":class: warning mmlab-smoke\n"
            "Profile `smoke` (what CI executes) trains each model for seconds on a few hundred samples, to "
            "check that the book builds. Run `make book` (profile quick) for numbers and verdicts that mean "
            "something.\n```\n")


def notebook_title(path: Path) -> str:
    """The first Markdown heading of a notebook (its stem if it has none)."""
    import nbformat
    path = Path(path)
    if path.exists():
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                for line in cell.source.splitlines():
                    if line.startswith("#"):
                        return line.lstrip("#").strip()
    return path.stem


def _artifact_details(artifact: str, aid: str, g: pd.DataFrame, titles: dict) -> str:
    """One artifact's group on the claims page: a collapsed <details id=aid>."""
    order = g.assign(_s=g["statement"].map(_natural), _d=g["dataset"].map(_dataset_key))
    g = order.sort_values(["_s", "_d", "protocol"]).drop(columns=["_s", "_d"])
    links = ", ".join(f'<a href="{CHAPTER_HREF.format(nb)}">{_e(titles.get(nb, nb))}</a>'
                      for nb in sorted(g["notebook"].unique()))
    return "\n".join([
        f'<details class="mmlab-artifact" id="{aid}">',
        f'<summary><span class="mmlab-artifact-name">{_e(artifact)}</span> '
        f'<span class="mmlab-counts">{count_badges(g["verdict"], zeros=False)}</span></summary>',
        f'<p class="mmlab-tested-in">Tested in {links} · <a href="#{aid}">link to this group</a></p>',
        claims_table(g), "</details>"])


def claims_page(df: pd.DataFrame, profile: str = "", left_out: int = 0, untested: int = 0,
                titles: dict | None = None) -> str:
    """The claims page (MyST): smoke banner, the rule in a collapsed admonition, the verdict
    counts as badges, then per paper (## heading) one collapsed group per artifact (Claim.source)
    with a stable id (:func:`artifact_ids`), its counts and the chapter(s) that tested it."""
    from mmlab.claims import RULE
    lines = ["# Claims ledger", "", smoke_banner(profile),
             "Every paper claim the notebooks test, with the verdict computed from this build's per-seed "
             f"results (profile **{profile or 'unknown'}**). *Effect* is the mean ± sd over seeds of the "
             "per-seed difference *d* named under each claim: differences of accuracies or mAP in points "
             "(pts), ratios such as DMC raw. *Reported* gives the paper's own numbers behind the claim, for "
             "the dataset family our stand-in represents; a claim is tested only where they show it. Click "
             "an artifact to see its claims.", "",
             "```{admonition} The verdict rule", ":class: dropdown", RULE, "```", ""]
    if left_out:
        lines += [f"({left_out} ledger(s) recorded under another profile are left out.)", ""]
    if len(df) == 0:
        return "\n".join(lines + ["No claims were tested in this build.", ""])
    note = "(the untested ones, which the paper's own numbers do not show for the family, are listed in " \
        "their chapters)" if untested else ""
    counts = count_badges(df["verdict"], untested)
    lines += [f'<p class="mmlab-counts">{len(df)} claims tested: {counts} {_e(note)}</p>',
              "", OPEN_TARGET, ""]
    for paper, groups in artifact_groups(df):
        lines += [f"## {paper}", ""]
        lines += [_artifact_details(a, aid, g, titles or {}) + "\n" for a, aid, g in groups]
    return "\n".join(lines) + "\n"


# --- the intro: scoreboard, standings, chapter list -----------------------------------------
def _score_cell(g: pd.DataFrame, href: str, data: str) -> str:
    """A scoreboard cell: counts "2 R · 1 NR · 0 I" coloured by the most frequent verdict (grey
    "mixed" on a tie), a bar of the proportions, linking to the artifact's group."""
    counts = {v: int((g["verdict"] == v).sum()) for v in VERDICTS}
    top = max(counts.values())
    tone = [v for v, n in counts.items() if n == top]
    tone = _css(tone[0]) if len(tone) == 1 else "mmlab-mixed"
    text = " · ".join(f"{n} {SHORT[v]}" for v, n in counts.items())
    title = ", ".join(f"{n} {v}" for v, n in counts.items())
    bar = "".join(f'<span class="{_css(v)}" style="width:{100 * n / len(g):.1f}%"></span>'
                  for v, n in counts.items() if n)
    return (f'<td class="mmlab-cell {tone}" {data} title="{_e(title)}"><a href="{href}">{_e(text)}</a>'
            f'<span class="mmlab-bar">{bar}</span></td>')


def _paper_scoreboard(paper: str, groups: list) -> str:
    """One paper's matrix: artifacts (rows) x our datasets (columns)."""
    datasets = sorted({d for _, _, g in groups for d in g["dataset"]}, key=_dataset_key)
    head = "".join(f'<th scope="col">{_e(d)}</th>' for d in datasets)
    rows = []
    for artifact, aid, g in groups:
        href = f"{CLAIMS_PAGE}#{aid}"
        cells = [_score_cell(g[g["dataset"] == d], href, f'data-paper="{_e(paper)}" data-artifact="{_e(artifact)}" '
                             f'data-dataset="{_e(d)}"') if (g["dataset"] == d).any()
                 else '<td class="mmlab-cell-none">—</td>' for d in datasets]
        rows.append(f'<tr><th scope="row"><a href="{href}">{_e(artifact)}</a></th>{"".join(cells)}</tr>')
    return (f'<table class="mmlab-scoreboard">\n<colgroup><col class="mmlab-s-artifact">'
            f'{"<col>" * len(datasets)}</colgroup>\n<thead><tr><th scope="col">artifact</th>{head}</tr></thead>\n'
            "<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>")


def scoreboard(df: pd.DataFrame) -> str:
    """Per paper (### heading) the verdicts of its claims as a matrix of artifacts x our
    stand-in datasets, each cell linking to the artifact's group on the claims page."""
    if len(df) == 0:
        return "No claim was tested in this build, so there is no scoreboard yet.\n"
    legend = ('<p class="mmlab-legend">Each cell counts the verdicts of one artifact\'s claims on one of our '
              "datasets (all protocols): " + ", ".join(f"{SHORT[v]} {badge(v)}" for v in VERDICTS)
              + "; the cell takes the colour of its most frequent verdict (grey on a tie), the bar shows the "
              "proportions. Click a cell for the claims.</p>")
    out = [legend, ""]
    for paper, groups in artifact_groups(df):
        sub = df[df["paper"] == paper]
        out += [f"### {paper}", "", f'<p class="mmlab-counts">{count_badges(sub["verdict"])}</p>', "",
                _paper_scoreboard(paper, groups), ""]
    none = [p for p in list(PAPERS.values())[1:] if p not in set(df["paper"])]
    if none:
        out += [f"No claim of {', '.join(none)} was tested in this build.", ""]
    return "\n".join(out)


def _value(mean: float, std, unit: str) -> str:
    scale, digits = (100.0, 1) if unit == "percent" else (1.0, 2)
    text = f"{mean * scale:.{digits}f}"
    return text + (f" ± {std * scale:.{digits}f}" if std is not None and math.isfinite(std) else "")


def ranked(standings: pd.DataFrame) -> pd.DataFrame:
    """The standings, one row per (method, dataset, protocol, metric) (the first notebook's row
    when several record one), with `rank` in its (metric, dataset, protocol) column: 1 = best
    (highest mean, or lowest where `better` is "lower"); ties share the better rank."""
    st = standings.drop_duplicates(list(STANDING_KEY), keep="first").copy()
    sign = st["better"].map({"higher": -1.0, "lower": 1.0}).fillna(-1.0)
    st["_key"] = st["mean"] * sign
    st["rank"] = st.groupby(["metric", "dataset", "protocol"])["_key"].rank(method="min").astype(int)
    return st.drop(columns="_key")


def _metric_table(metric: str, g: pd.DataFrame) -> str:
    """One metric's table: methods (best mean rank first) x (dataset, protocol) columns."""
    cols = list(dict.fromkeys(zip(g["dataset"], g["protocol"])))
    methods = g.groupby("method")["rank"].mean().sort_values(kind="stable")      # ties: by name (groupby sorts)
    by = {(r["method"], r["dataset"], r["protocol"]): r for r in g.to_dict("records")}
    head = "".join(f'<th scope="col">{_e(d)}<span class="mmlab-protocol">{_e(p or "")}</span></th>' for d, p in cols)
    rows = []
    for m in methods.index:
        cells = []
        for d, p in cols:
            r = by.get((m, d, p))
            if r is None:
                cells.append('<td class="mmlab-cell-none">—</td>')
                continue
            best = ' class="mmlab-best"' if r["rank"] == 1 else ""
            value = _e(_value(r["mean"], r["std"], r["unit"]))
            cells.append(f'<td{best} title="n = {r["n"]}; {_e(r["source"])}">{value}'
                         f' <span class="mmlab-rank">#{r["rank"]}</span></td>')
        rows.append(f'<tr><th scope="row">{_e(m)}</th>{"".join(cells)}</tr>')
    unit = "%" if g["unit"].iloc[0] == "percent" else "ratio"
    better = "higher" if g["better"].iloc[0] == "higher" else "lower"
    cap = (f"{_e(metric)} ({unit}; mean ± std over seeds; #rank in the column, 1 = best, {better} is better; "
           f"sources: {_e(', '.join(sorted(set(g['source']))))})")
    return (f'<table class="mmlab-standings">\n<caption>{cap}</caption>\n<colgroup><col class="mmlab-s-method">'
            f'{"<col>" * len(cols)}</colgroup>\n<thead><tr><th scope="col">method</th>{head}</tr></thead>\n'
            "<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>")


def standings_tables(standings: pd.DataFrame) -> str:
    """"Where each method stands": one table per metric of the ledgers' standings rows
    (Ledger.add_standings), best cell of each column highlighted."""
    if standings is None or len(standings) == 0:
        return "No chapter has recorded where the methods stand yet.\n"
    st = ranked(standings)
    return "\n\n".join(_metric_table(metric, g) for metric, g in st.groupby("metric", sort=False)) + "\n"


def chapter_list(root: Path) -> str:
    """The intro's chapter list (Markdown) from root/_toc.yml: the toc's notebooks grouped by
    paper by their number (00-09 shared, 1x ERL-MR, 2x MIE, 3x MLA, 4x ReconBoost), titled by
    their first heading; a paper without a chapter is marked "chapters to come"."""
    from mmlab.book import toc_files
    root = Path(root)
    groups: dict = {paper: [] for paper in PAPERS.values()}
    for f in toc_files(root / "_toc.yml"):
        path = root / f"{f}.ipynb"
        if not path.exists():
            continue
        m = re.match(r"(\d)\d", path.stem)
        paper = PAPERS.get(int(m.group(1)), "Other") if m else "Other"
        title = re.sub(r"[`<>]", "", notebook_title(path))
        groups.setdefault(paper, []).append(f"{{doc}}`{title} <{CHAPTER_DOC.format(path.stem)}>`")
    return "\n".join(f"* **{paper}**" + ("".join(f"\n  * {doc}" for doc in docs) if docs else ": *chapters to come*.")
                     for paper, docs in groups.items()) + "\n"


@dataclass
class BuildLedgers:
    """What a build's ledgers hold for the book's pages (profile-filtered)."""
    claims: pd.DataFrame
    standings: pd.DataFrame
    untested: int
    left_out: int
    ledgers: int


def load_build(directory, profile: str = "") -> BuildLedgers:
    """Read every ledger of `directory` recorded under `profile`: claims (Ledger.load_all),
    standings (notebook order), untested count, ledgers of other profiles left out."""
    d = Path(directory)
    paths = sorted(d.glob("[!.]*.json")) if d.is_dir() else []    # dot files: atomic writes in progress
    every = [Ledger.load(p) for p in paths]
    kept = [led for led in every if led.profile == profile]
    frames = [led.standings_frame() for led in kept if led.standings]
    standings = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return BuildLedgers(Ledger.load_all(d, profile=profile), standings, sum(len(led.untested) for led in kept),
                        len(every) - len(kept), len(kept))


def render_intro(text: str, found: BuildLedgers, profile: str, root: Path) -> str:
    """The intro page with its markers replaced: the smoke banner, the scoreboard and
    standings (or a sentence when the build has no ledgers), the chapter list. Raises if a
    marker is missing from `text`."""
    missing = [m for m in MARKERS.values() if m not in text]
    if missing:
        raise ValueError(f"the intro page lacks the markers {missing}")
    if found.ledgers == 0:
        board = "No claims ledger was found in this build, so there is no scoreboard yet.\n"
    else:
        board = (scoreboard(found.claims) + "\n### Where each method stands\n\n"
                 + standings_tables(found.standings))
    return (text.replace(MARKERS["banner"], smoke_banner(profile))
            .replace(MARKERS["scoreboard"], board)
            .replace(MARKERS["chapters"], chapter_list(root)))
