"""The four papers' reported numbers, transcribed as data.

One YAML file per paper table lives in ``mmlab/papers/tables/<paper>-<table>.yaml``
(schema: ``paper``, ``table``, ``source``, ``caption``, ``metric``, optional ``notes``, and
``entries``: a long list of ``{method, dataset, column, value}``, one printed number each).
Numbers are transcribed exactly as printed; cells printed as '-' are absent. ``notes`` records
what was ambiguous or garbled in the papers' text and how it was read.

>>> from mmlab import papers
>>> papers.reported("reconboost-table11", "Concat Fusion", "CREMA-D", "Visual")
26.81
>>> papers.paper_vs_ours(ours, "reconboost-table5", {("Concat Fusion", "Visual", "CREMA-D"): ("concat", "image")},
...                      our_dataset="AV-MNIST")                                     # doctest: +SKIP

Dataset names are stored in one spelling per dataset (``CREMA-D``, ``AVE``, ``CG-MNIST``,
``Kinetics-Sounds``, ``ModelNet40``, ...); lookups also accept the papers' abbreviations
(``CGM``, ``KS``, ``MN40``) and ignore case and punctuation.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path

import pandas as pd
import yaml

__all__ = ["PAPERS", "FIELDS", "list_tables", "load_table", "table_info", "reported", "paper_vs_ours", "mapping_for",
           "collapse", "comparison", "threshold", "in_figure", "cite"]

TABLES_DIR = Path(__file__).parent / "tables"
PAPERS = ("erl-mr", "mie", "mla", "reconboost")
FIELDS = ["paper", "table", "source", "metric", "method", "dataset", "column", "value"]
_HEADER = ("paper", "table", "source", "caption", "metric", "entries")
_ENTRY = ("method", "dataset", "column", "value")

# abbreviations used by the papers -> the spelling stored in the YAML files
_DATASET_ALIASES = {"cgm": "CG-MNIST", "cgmnist": "CG-MNIST", "coloredgraymnist": "CG-MNIST",
                    "ks": "Kinetics-Sounds", "kineticsound": "Kinetics-Sounds", "kineticssounds": "Kinetics-Sounds",
                    "mn40": "ModelNet40", "modelnet40": "ModelNet40", "cremad": "CREMA-D",
                    "chsims": "CH-SIMS", "sims": "CH-SIMS", "food101": "Food-101", "nvgesture": "NVGesture"}


class LookupFailed(KeyError):
    """KeyError whose message prints as written (KeyError would repr-quote it)."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def _key(s) -> str:
    return re.sub(r"[^0-9a-z]", "", str(s).lower())


def _sort_key(table_id: str):
    paper, _, num = table_id.rpartition("-table")
    return (paper, int(num) if num.isdigit() else math.inf, num)


@lru_cache(maxsize=1)
def _ids() -> tuple[str, ...]:
    return tuple(sorted((p.stem for p in TABLES_DIR.glob("*.yaml")), key=_sort_key))


def list_tables(paper: str | None = None) -> list[str]:
    """Ids of the transcribed tables, e.g. ``"reconboost-table11"`` (optionally of one paper)."""
    ids = list(_ids())
    if paper is not None:
        if paper not in PAPERS:
            raise ValueError(f"unknown paper {paper!r}; papers: {', '.join(PAPERS)}")
        ids = [i for i in ids if i.rpartition("-table")[0] == paper]
    return ids


def _check_id(table_id: str) -> str:
    tid = str(table_id).strip().lower().replace(" ", "")
    if tid not in _ids():
        raise LookupFailed(f"unknown paper table {table_id!r}; available ids: {', '.join(_ids())}")
    return tid


@lru_cache(maxsize=None)
def _raw(table_id: str) -> dict:
    path = TABLES_DIR / f"{table_id}.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    missing = [k for k in _HEADER if k not in doc]
    if missing:
        raise ValueError(f"{path.name}: missing fields {missing}")
    for i, e in enumerate(doc["entries"]):
        if set(e) != set(_ENTRY):
            raise ValueError(f"{path.name}: entry {i} has fields {sorted(e)}, expected {list(_ENTRY)}")
        if isinstance(e["value"], bool) or not isinstance(e["value"], (int, float)):
            raise ValueError(f"{path.name}: entry {i} value {e['value']!r} is not a number")
    return doc


def table_info(table_id: str) -> dict:
    """Header of a table: paper, table, source, caption, metric, notes (no entries)."""
    doc = _raw(_check_id(table_id))
    return {k: doc.get(k, "") for k in ("paper", "table", "source", "caption", "metric", "notes")}


def load_table(table_id: str) -> pd.DataFrame:
    """One paper table as a long DataFrame with columns
    paper, table, source, metric, method, dataset, column, value (value: float as printed)."""
    tid = _check_id(table_id)
    doc = _raw(tid)
    rows = [{"paper": doc["paper"], "table": doc["table"], "source": doc["source"], "metric": doc["metric"],
             "method": str(e["method"]), "dataset": str(e["dataset"]), "column": str(e["column"]),
             "value": float(e["value"])} for e in doc["entries"]]
    return pd.DataFrame(rows, columns=FIELDS)


def _match(df: pd.DataFrame, field: str, want, table_id: str) -> pd.DataFrame:
    """Rows whose `field` equals `want`: exact first, then ignoring case/punctuation (+ dataset aliases)."""
    hit = df[df[field] == want]
    if len(hit):
        return hit
    k = _key(want)
    if field == "dataset":
        k = _key(_DATASET_ALIASES.get(k, want))
    hit = df[df[field].map(_key) == k]
    if not len(hit):
        choices = ", ".join(repr(v) for v in dict.fromkeys(df[field]))
        raise LookupFailed(f"{table_id}: no {field} {want!r} here; choices: {choices}")
    return hit


def reported(table_id: str, method: str | None = None, dataset: str | None = None,
             column: str | None = None):
    """The reported number(s). When method and column are given and they (with dataset, needed
    only if the table has several datasets holding that cell) pin down one cell, returns it as a
    float; otherwise the matching rows (DataFrame). Unknown names raise KeyError listing the choices."""
    tid = _check_id(table_id)
    df = load_table(tid)
    for field, want in (("method", method), ("dataset", dataset), ("column", column)):
        if want is not None:
            df = _match(df, field, want, tid)
    if len(df) == 1 and method is not None and column is not None:
        return float(df["value"].iloc[0])
    return df.reset_index(drop=True)


def _decimals(x: float) -> int:
    s = repr(float(x))
    return 0 if "e" in s or "." not in s else len(s.split(".")[1].rstrip("0"))


def _printed(df: pd.DataFrame, method: str, dataset: str, column: str) -> str:
    """A reported value formatted with the decimals its column is printed with in the paper
    (trailing zeros such as 79.70 are lost by YAML floats; the column's widest value restores them)."""
    col = df[(df["dataset"] == dataset) & (df["column"] == column)]
    d = max(_decimals(v) for v in col["value"])
    v = float(df[(df["method"] == method) & (df["dataset"] == dataset) & (df["column"] == column)]["value"].iloc[0])
    return f"{v:.{d}f}"


def paper_vs_ours(ours: pd.DataFrame, table_id: str, mapping: dict, our_dataset: str,
                  scale: float = 100.0, digits: int = 1) -> pd.DataFrame:
    """Side-by-side table: the paper's reported number next to our mean ± std over seeds.

    ours: long per-seed results with columns method, column, seed, value (value * `scale` gives
    the paper's unit: scale=100 for accuracies stored as fractions, 1.0 for raw numbers).
    mapping: {(paper_method, paper_column[, paper_dataset]): (our_method, our_column)}. When the
    paper table has several datasets, every key must name the paper dataset (3-tuple).
    our_dataset: the dataset our numbers were measured on (labels the column).
    digits: decimals of ours (1 for accuracies in %, 2 for ratios such as DMC).

    One row per mapping entry. Display columns: "method", "column" (the paper's names),
    "paper: <dataset> (reported)" (one such column per paper dataset used) and
    "ours: <our_dataset> (mean ± std, <n> seeds)" formatted "58.4 ± 1.2". Numeric columns for
    programmatic use: paper_dataset, paper_value, ours_method, ours_column, ours_mean, ours_std, n.
    """
    tid = _check_id(table_id)
    need = {"method", "column", "seed", "value"}
    if not need <= set(ours.columns):
        raise ValueError(f"`ours` needs columns {sorted(need)}; got {list(ours.columns)}")
    if not mapping:
        raise ValueError("mapping is empty")
    table = load_table(tid)
    datasets = list(dict.fromkeys(table["dataset"]))
    rows = []
    for key, target in mapping.items():
        if not (isinstance(key, tuple) and len(key) in (2, 3)):
            raise ValueError(f"mapping key {key!r} must be (paper_method, paper_column) or "
                             "(paper_method, paper_column, paper_dataset)")
        if not (isinstance(target, tuple) and len(target) == 2):
            raise ValueError(f"mapping value {target!r} must be (our_method, our_column)")
        p_method, p_column = key[0], key[1]
        if len(key) == 3:
            p_dataset = _match(table, "dataset", key[2], tid)["dataset"].iloc[0]
        elif len(datasets) == 1:
            p_dataset = datasets[0]
        else:
            raise ValueError(f"{tid} reports several datasets ({', '.join(datasets)}): name the paper dataset "
                             f"in the mapping key, e.g. ({p_method!r}, {p_column!r}, {datasets[0]!r})")
        cell = _match(_match(_match(table, "dataset", p_dataset, tid), "method", p_method, tid),
                      "column", p_column, tid)
        m, c = cell["method"].iloc[0], cell["column"].iloc[0]
        o_method, o_column = target
        sel = ours[(ours["method"] == o_method) & (ours["column"] == o_column)]
        if sel.empty:
            pairs = ", ".join(f"({a!r}, {b!r})" for a, b in dict.fromkeys(zip(ours["method"], ours["column"])))
            raise LookupFailed(f"no rows in `ours` for (method, column) = ({o_method!r}, {o_column!r}); have: {pairs}")
        if sel["seed"].duplicated().any():
            raise ValueError(f"`ours` has several rows per seed for ({o_method!r}, {o_column!r})")
        vals = sel["value"].astype(float) * scale
        n = int(len(vals))
        rows.append({"method": m, "column": c, "paper_dataset": p_dataset,
                     "paper_value": float(cell["value"].iloc[0]), "paper_printed": _printed(table, m, p_dataset, c),
                     "ours_method": o_method, "ours_column": o_column, "ours_mean": float(vals.mean()),
                     "ours_std": float(vals.std(ddof=1)) if n > 1 else math.nan, "n": n})
    out = pd.DataFrame(rows)
    ns = sorted(set(out["n"]))
    ours_label = f"ours: {our_dataset} (mean ± std, {ns[0]} seeds)" if len(ns) == 1 else \
        f"ours: {our_dataset} (mean ± std, n seeds)"

    def fmt(r):
        s = f"{r.ours_mean:.{digits}f} ± {r.ours_std:.{digits}f}" if r.n > 1 else f"{r.ours_mean:.{digits}f} (1 seed)"
        return s if len(ns) == 1 else f"{s} (n={r.n})"

    display = ["method", "column"]
    for ds in dict.fromkeys(out["paper_dataset"]):
        label = f"paper: {ds} (reported)"
        out[label] = [p if d == ds else "" for p, d in zip(out["paper_printed"], out["paper_dataset"])]
        display.append(label)
    out[ours_label] = [fmt(r) for r in out.itertuples()]
    display.append(ours_label)
    numeric = ["paper_dataset", "paper_value", "ours_method", "ours_column", "ours_mean", "ours_std", "n"]
    return out[display + numeric]


def mapping_for(table_id: str, methods: dict, columns: dict, datasets=None) -> dict:
    """paper_vs_ours mapping for every (paper method, paper column, paper dataset) of a table
    whose method is in `methods` {paper method: our method} and column in `columns`
    {paper column: our column}; `datasets` limits the paper datasets."""
    t = load_table(_check_id(table_id))
    out = {}
    for r in t.itertuples():
        if r.method in methods and r.column in columns and (datasets is None or r.dataset in datasets):
            out[(r.method, r.column, r.dataset)] = (methods[r.method], columns[r.column])
    if not out:
        raise ValueError(f"no entry of {table_id} matches methods {list(methods)} and columns {list(columns)}")
    return out


def collapse(*tables: pd.DataFrame) -> pd.DataFrame:
    """paper_vs_ours tables for display, one row per (method, column): the reported numbers of
    the paper's datasets side by side, then ours (display columns only). Several tables (e.g.
    one per protocol, each with its own "ours: ..." label) are joined on (method, column). The
    rows are indexed by the paper's row name, and its column name where the table has several
    ("—" where a cell has no value)."""
    first = lambda s: next((v for v in s if v != ""), "")
    out = None
    for table in tables:
        shown = [c for c in table.columns if c.startswith(("paper: ", "ours: "))]
        t = table.groupby(["method", "column"], sort=False)[shown].agg(first).reset_index()
        if out is None:
            out = t
        else:
            new = [c for c in t.columns if c not in out.columns]
            out = out.merge(t[["method", "column"] + new], on=["method", "column"], how="left")
    out = out.fillna("—")
    if out["column"].nunique() == 1:
        return out.drop(columns="column").set_index("method").rename_axis(f"paper's row ({out['column'].iloc[0]})")
    return out.set_index(["method", "column"]).rename_axis(["paper's row", "paper's column"])


def modalities_vs_paper(frame: pd.DataFrame, table_id: str, names: dict, columns: dict,
                        our_dataset: str) -> pd.DataFrame:
    """A reported table with a column per modality and "Multi" (MLA Table 4, MIE Table 6) vs
    ours: `names` {paper row: our method label}, `columns` {paper column: our modality}; each
    modality's own accuracy fills its column, the fused accuracy "Multi" (collapse()d)."""
    from mmlab.studies import long_frame
    d = frame[frame.method.isin(names.values())]
    cols = {ours: paper for paper, ours in columns.items()}
    ours = pd.concat([long_frame(d, "fused_acc", "Multi", dedupe=True),
                      long_frame(d[d.modality.isin(cols)], "per_modality_acc", cols)])
    mp = mapping_for(table_id, names, {**{c: c for c in columns}, "Multi": "Multi"})
    return collapse(paper_vs_ours(ours, table_id, mp, our_dataset=our_dataset))


def _cell(table_id: str, method: str, column: str, dataset: str) -> tuple[float, str]:
    """(value, printed string) of one reported cell; unknown names raise listing the choices."""
    tid = _check_id(table_id)
    t = load_table(tid)
    hit = _match(_match(_match(t, "dataset", dataset, tid), "method", method, tid), "column", column, tid)
    m, d, c = hit["method"].iloc[0], hit["dataset"].iloc[0], hit["column"].iloc[0]
    return float(hit["value"].iloc[0]), _printed(t, m, d, c)


PAPER_NAMES = {"erl-mr": "ERL-MR", "mie": "MIE", "mla": "MLA", "reconboost": "ReconBoost"}


def _label(table_id: str) -> str:
    """'ReconBoost Table 1' for 'reconboost-table1'."""
    info = table_info(table_id)
    return f"{PAPER_NAMES[info['paper']]} {info['table']}"


def comparison(table_id: str, better: str, worse: str, columns, datasets, margin: float = 0.0):
    """Does the paper report `better` above `worse` (by more than `margin`) in every cell it
    prints for `columns` (one name or several) on the datasets of `datasets` (the family a
    stand-in represents)? Returns (holds, citation), the citation listing the reported pairs,
    e.g. "ReconBoost Table 1, Acc: Ours 79.82 vs G-Blending 63.81 (CREMA-D); 71.35 vs 62.75
    (AVE)". A family dataset the table does not report is skipped; if it reports none, the
    claim does not hold. A claim is tested on a stand-in only where it holds."""
    columns = [columns] if isinstance(columns, str) else list(columns)
    t = load_table(_check_id(table_id))
    parts, holds = [], True
    for ds in datasets:
        for col in columns:
            if not ((t["dataset"] == ds) & (t["column"] == col)).any():
                continue
            (va, pa), (vb, pb) = _cell(table_id, better, col, ds), _cell(table_id, worse, col, ds)
            holds &= va - vb > margin
            where = ds if len(columns) == 1 else f"{ds}, {col}"
            parts.append(f"{better} {pa} vs {worse} {pb} ({where})" if not parts else f"{pa} vs {pb} ({where})")
    head = f"{_label(table_id)}" + (f", {columns[0]}" if len(columns) == 1 else "")
    return bool(parts) and holds, head + ": " + ("; ".join(parts) or f"no cell for {list(datasets)}")


def threshold(table_id: str, method: str, column: str, datasets, below: float | None = None,
              above: float | None = None):
    """(holds, citation): is `method`'s reported `column` below / above the bound on every
    family dataset the table reports? E.g. ReconBoost's DMC < 1 (Table 11)."""
    t = load_table(_check_id(table_id))
    parts, holds = [], True
    for ds in datasets:
        if not ((t["dataset"] == ds) & (t["column"] == column) & (t["method"] == method)).any():
            continue
        v, printed = _cell(table_id, method, column, ds)
        holds &= (below is None or v < below) and (above is None or v > above)
        parts.append(f"{printed} ({ds})")
    return bool(parts) and holds, f"{_label(table_id)}: {method} {column} " + ", ".join(parts)


def in_figure(paper: str, figure: str, figure_datasets, datasets, what: str = "plotted, no numbers printed"):
    """(holds, citation) for a claim the paper makes only in a figure: it holds for a
    stand-in when the figure covers a dataset of its family."""
    shown = [d for d in figure_datasets if d in set(datasets)]
    return bool(shown), f"{PAPER_NAMES[paper]} {figure} ({', '.join(figure_datasets)}): {what}"


def cite(table_id: str, cells) -> str:
    """Reported numbers as text: cells [(method, column, dataset), ...] ->
    "ReconBoost Table 5: Concat Fusion Visual 26.81 (CREMA-D), Uni-train Visual 50.14 (CREMA-D)"."""
    parts = []
    for method, column, dataset in cells:
        parts.append(f"{method} {column} {_cell(table_id, method, column, dataset)[1]} ({dataset})")
    return f"{_label(table_id)}: " + ", ".join(parts)


def reported_rows(entries, column: str = "Acc") -> pd.DataFrame:
    """Reported cells as a table: entries [(table_id, paper dataset, {label: paper method})]
    -> one row per entry ("<dataset> (<Paper> Table N, reported)"), a column per label,
    values as printed ("—" where the table has no such row)."""
    rows = {}
    for tid, ds, roles in entries:
        row = {}
        for label, method in roles.items():
            try:
                row[label] = _cell(tid, method, column, ds)[1]
            except LookupFailed:
                row[label] = "—"
        rows[f"{ds} ({_label(tid)}, reported)"] = row
    return pd.DataFrame.from_dict(rows, orient="index")
