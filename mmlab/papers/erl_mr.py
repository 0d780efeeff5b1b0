"""ERL-MR chapters 10-11: the paper's tables next to ours, and its claims as checks.

Each function builds one artifact from the studies of mmlab.configs.erl_mr ({(dataset,
protocol): (imbalance frame, runs)}); the notebooks call one function per artifact (figures:
mmlab.papers.erl_mr_figures). Reported numbers come from mmlab/papers/tables/erl-mr-*.yaml.
"""
from __future__ import annotations

from typing import Dict

import pandas as pd

from mmlab import papers
from mmlab.configs.erl_mr import (BASELINES, DAGGER, ERL_FAMILY, ERL_PROTOCOLS, ERL_TABLE_DATASETS, F2_DATASETS, F3,
                                  FUSIONS, SWITCHES, T2, T2_NAMES, T3, T3_COLUMNS, T3_NAMES, T4, T5_NAMES, t5_label)
from mmlab.configs.imbalance import IMB_ERL_READINGS
from mmlab.studies import agg_pm, fused_rows, long_frame, pm, standings
from mmlab.studies import fused_by_seed as _fused, own_by_seed as _own

PAPER = "ERL-MR"
LABEL = {p: pr.label for p, pr in ERL_PROTOCOLS.items()}
# the readings of Table 2's unnamed "Uni-Modal 1 / 2" rows per stand-in (chapter 01's, plus AVE's)
READINGS = {**IMB_ERL_READINGS, "avmnist": ("AVE", {"": {"Uni-Modal 1": "audio", "Uni-Modal 2": "image"}})}


def overview(st: Dict[tuple, tuple], profile: str) -> pd.DataFrame:
    """Per (dataset, protocol): what it stands in for, passes, batch, seeds, runs."""
    rows = []
    for (n, p), (frame, runs) in st.items():
        sz = ERL_PROTOCOLS[p].specs[n].sizes(profile)
        rows.append({"dataset": n, "protocol": LABEL[p], "stands in for": ", ".join(ERL_TABLE_DATASETS.get(n, ERL_FAMILY[n])),
                     "passes over train": sz.epochs, "batch": sz.batch_size, "seeds": frame.seed.nunique(),
                     "runs": len(runs)})
    return pd.DataFrame(rows).set_index(["dataset", "protocol"])


def record_standings(ledger, st: Dict[tuple, tuple]) -> None:
    """Where Table 2's rows stand, per dataset and protocol (the intro's scoreboard)."""
    for (n, p), (frame, _) in st.items():
        rows = frame[frame.method.isin(list(T2) + ["unimodal"])]
        if set(T2) & set(rows.method):
            ledger.add_standings(standings(rows, LABEL[p], "chapter 10, ERL-MR Table 2 rows"))


def _by_dataset(st, labels):
    """{dataset: [(protocol, frame)]} of the studies that ran every label."""
    out: Dict[str, list] = {}
    for (n, p), (frame, _) in st.items():
        if set(labels) <= set(frame.method):
            out.setdefault(n, []).append((p, frame))
    return out


# --- Table 2 -----------------------------------------------------------------------------------------
def table2(st: Dict[tuple, tuple]) -> Dict[str, pd.DataFrame]:
    """Table 2 (reported) vs ours per stand-in: each modality alone, each fusion with and without
    ERL-MR (fused test accuracy), one column of ours per protocol (and per reading of the paper's
    unnamed uni-modal rows on cgm)."""
    out = {}
    for n, found in _by_dataset(st, T2).items():
        paper_ds, readings = READINGS[n]
        tables = []
        for p, frame in found:
            d = frame[frame.method.isin([*T2, "unimodal"])]
            ours = pd.concat([long_frame(d[d.method == "unimodal"], "unimodal_acc"),
                              long_frame(fused_rows(d[d.method != "unimodal"]), "fused_acc", "fused")])
            for label, unis in readings.items():
                mp = {(pm_, "Acc", paper_ds): ("unimodal", mod) for pm_, mod in unis.items()}
                mp.update({(name, "Acc", paper_ds): (name, "fused") for name in T2})
                tables.append(papers.paper_vs_ours(ours, "erl-mr-table2", mp,
                                                   our_dataset=f"{n}, {LABEL[p]}" + (f", {label}" if label else "")))
        out[f"**ERL-MR Table 2 ({paper_ds}, reported) vs ours ({n})**"] = papers.collapse(*tables)
    return out


def erl_gains(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, protocol, fusion): ERL-MR's gain in fused test accuracy (points, mean ± sd of
    the per-seed paired differences) beside the paper's gain on each dataset of the family; from
    gain_rows(st)."""
    keys = ["dataset", "protocol", "fusion"]
    t = ours.groupby(keys, sort=False).gain.agg(lambda g: f"{100 * g.mean():+.1f} ± {100 * g.std():.1f}")
    rep = paper.assign(gain=paper.gain.map("{:+.1f}".format, na_action="ignore"))
    rep = rep.pivot(index=keys, columns="paper dataset", values="gain")[list(dict.fromkeys(paper["paper dataset"]))]
    rep.columns = [f"paper: {ds} (reported)" for ds in rep.columns]
    return t.rename("ours (points)").to_frame().join(rep).fillna("—")


def table2_claims(ledger, st: Dict[tuple, tuple]) -> None:
    """"ERL-MR improves every fusion on every dataset": one claim per (fusion, dataset) cell and protocol."""
    for n, found in _by_dataset(st, T2).items():
        for p, frame in found:
            for f in FUSIONS:
                name = T2_NAMES[f]
                ledger.check_supported(
                    papers.comparison("erl-mr-table2", name + DAGGER, name, "Acc", ERL_FAMILY[n]),
                    f"{n}-erl-improves-{f}@{p}", PAPER, "Table 2", f"ERL-MR improves {name} fusion", n,
                    f"acc({name}{DAGGER}) - acc({name})", list(_fused(frame, name + DAGGER) - _fused(frame, name)),
                    protocol=LABEL[p])


# --- Table 3 -----------------------------------------------------------------------------------------
def _t3_long(frame: pd.DataFrame, n: str) -> pd.DataFrame:
    d = frame[frame.method.isin(T3)]
    cols = {ours: paper for paper, ours in T3_COLUMNS[n].items()}
    return pd.concat([long_frame(d[d.modality.isin(cols)], "per_modality_acc", cols),
                      long_frame(d, "fused_acc", "Fusion", dedupe=True)])


def table3(st: Dict[tuple, tuple]) -> Dict[str, pd.DataFrame]:
    """Table 3 (reported) vs ours: each baseline and ERL-MR with each fusion, each modality's own
    accuracy inside the model and the fused accuracy. On watch, the per-modality columns are
    USC's (MHAD's second modality is a skeleton); the fused column is both datasets'."""
    out = {}
    for n, found in _by_dataset(st, T3).items():
        names = {k: k for k in T3}
        per_ds = ("USC",) if n == "watch" else ERL_TABLE_DATASETS[n]
        mp = papers.mapping_for("erl-mr-table3", names, {c: c for c in T3_COLUMNS[n]}, per_ds)
        mp.update(papers.mapping_for("erl-mr-table3", names, {"Fusion": "Fusion"}, ERL_TABLE_DATASETS[n]))
        tables = [papers.paper_vs_ours(_t3_long(frame, n), "erl-mr-table3", mp, our_dataset=f"{n}, {LABEL[p]}")
                  for p, frame in found]
        out[f"**ERL-MR Table 3 ({', '.join(ERL_TABLE_DATASETS[n])}, reported) vs ours ({n})**"] = \
            papers.collapse(*tables)
    return out


def _t3_split(d: pd.DataFrame) -> pd.DataFrame:
    """Table 3's labels "<baseline> (<fusion>)" split into baseline and fusion columns."""
    parts = d.method.str.rsplit(" (", n=1)
    return d.assign(baseline=parts.str[0], fusion=parts.str[1].str[:-1])


def table3_compact(st: Dict[tuple, tuple]) -> Dict[str, pd.DataFrame]:
    """Ours only, fused test accuracy: a row per method, a column per fusion (mean ± sd, %)."""
    out = {}
    for n, found in _by_dataset(st, T3).items():
        for p, frame in found:
            d = _t3_split(fused_rows(frame[frame.method.isin(T3)]))
            t = agg_pm(d, ["baseline", "fusion"], "fused_acc", unstack="fusion")
            out[f"**{n}, {LABEL[p]}**: fused test accuracy (%), mean ± sd over seeds"] = \
                t.reindex(index=[*BASELINES, "Ours"], columns=[T3_NAMES[f] for f in FUSIONS])
    return out


def table3_rows(st: Dict[tuple, tuple]) -> pd.DataFrame:
    """For the Table 3 figure: (panel = fusion, method = baseline or ERL-MR, seed, acc) per
    dataset and protocol that ran Table 3, fused test accuracy."""
    out = []
    for n, found in _by_dataset(st, T3).items():
        for p, frame in found:
            d = _t3_split(fused_rows(frame[frame.method.isin(T3)]))
            out.append(pd.DataFrame({"panel": f"{n}, {LABEL[p]}: " + d.fusion, "method": d.baseline.replace(
                {"Ours": "ERL-MR"}), "seed": d.seed, "acc": d.fused_acc}))
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(columns=["panel", "method", "seed", "acc"])


def table3_claims(ledger, st: Dict[tuple, tuple]) -> None:
    """ERL-MR ("Ours") above each baseline with the same fusion, fused accuracy, per protocol."""
    for n, found in _by_dataset(st, T3).items():
        for p, frame in found:
            for f in FUSIONS:
                ours = f"Ours ({T3_NAMES[f]})"
                for b in BASELINES:
                    other = f"{b} ({T3_NAMES[f]})"
                    ledger.check_supported(
                        papers.comparison("erl-mr-table3", ours, other, "Fusion", ERL_FAMILY[n]),
                        f"{n}-erl-beats-{BASELINES[b]}-{f}@{p}", PAPER, "Table 3",
                        f"ERL-MR beats {b} with {T3_NAMES[f]} fusion", n, f"acc({ours}) - acc({other})",
                        list(_fused(frame, ours) - _fused(frame, other)), protocol=LABEL[p])


# --- Table 4 -----------------------------------------------------------------------------------------
_T4_DS = {"watch": "USC", "avmnist": "AVE"}


def table4(st: Dict[tuple, tuple]) -> pd.DataFrame | None:
    """Table 4 (reported) vs ours: MMTM and CentralNet with and without ERL-MR, fused accuracy."""
    tables = []
    for n, found in _by_dataset(st, T4).items():
        for p, frame in found:
            ours = long_frame(fused_rows(frame[frame.method.isin(T4)]), "fused_acc", "Acc")
            mp = papers.mapping_for("erl-mr-table4", {k: k for k in T4}, {"Acc": "Acc"}, (_T4_DS[n],))
            tables.append(papers.paper_vs_ours(ours, "erl-mr-table4", mp, our_dataset=f"{n}, {LABEL[p]}"))
    return papers.collapse(*tables) if tables else None


def table4_claims(ledger, st: Dict[tuple, tuple]) -> None:
    for n, found in _by_dataset(st, T4).items():
        for p, frame in found:
            for name in ("MMTM", "CentralNet"):
                ledger.check_supported(
                    papers.comparison("erl-mr-table4", name + DAGGER, name, "Acc", ERL_FAMILY[n]),
                    f"{n}-erl-improves-{name.lower()}@{p}", PAPER, "Table 4", f"ERL-MR improves {name}", n,
                    f"acc({name}{DAGGER}) - acc({name})", list(_fused(frame, name + DAGGER) - _fused(frame, name)),
                    protocol=LABEL[p])


# --- Table 5 -----------------------------------------------------------------------------------------
def _t5_found(st: Dict[tuple, tuple]):
    """[(dataset, protocol, frame, fusions)] of the studies that ran Table 5's settings for some fusion."""
    out = []
    for (n, p), (frame, _) in st.items():
        fusions = [f for f in FUSIONS if {t5_label(f, s) for s in SWITCHES} <= set(frame.method)]
        if fusions:
            out.append((n, p, frame, fusions))
    return out


def table5(st: Dict[tuple, tuple]) -> Dict[str, pd.DataFrame]:
    """Table 5 (USC, reported) and ours: a row per fusion, a column per (E, C1, C2) setting."""
    rep = papers.load_table("erl-mr-table5")
    out = {"**ERL-MR Table 5 (USC, reported)**, accuracy %":
           rep.pivot(index="method", columns="column", values="value").reindex(
               index=[T5_NAMES[f] for f in FUSIONS], columns=list(SWITCHES))}
    for n, p, frame, fusions in _t5_found(st):
        labels = [t5_label(f, s) for f in fusions for s in SWITCHES]
        d = fused_rows(frame[frame.method.isin(labels)])
        d = d.assign(fusion=d.method.str.split(": ").str[0], setting=d.method.str.split(": ").str[1])
        out[f"**ours ({n}, {LABEL[p]})**, fused test accuracy %, mean ± sd over seeds"] = \
            agg_pm(d, ["fusion", "setting"], "fused_acc", unstack="setting").reindex(
                index=[T5_NAMES[f] for f in fusions], columns=list(SWITCHES))
    return out


def _row_support(table_id: str, method: str, better: str, worse: str, datasets):
    """(holds, citation): is row `method`'s column `better` above its column `worse` in every
    reported dataset of the family?"""
    t = papers.load_table(table_id)
    shown = [d for d in datasets if ((t.dataset == d) & (t.method == method)).any()]
    holds = bool(shown) and all(papers.reported(table_id, method, d, better) > papers.reported(table_id, method, d, worse)
                                for d in shown)
    cells = [(method, c, d) for d in shown for c in (better, worse)]
    return holds, papers.cite(table_id, cells) if cells else f"ERL-MR Table 5: no {method} row for {list(datasets)}"


# the comparisons of the ablation text: every setting with E above none; all three above E alone
T5_CLAIMS = [("E", "none"), ("E+C1", "none"), ("E+C2", "none"), ("E+C1+C2", "none"), ("E+C1+C2", "E")]


def table5_claims(ledger, st: Dict[tuple, tuple]) -> None:
    """Table 5's statements per fusion the profile runs (T5_CLAIMS), per protocol."""
    for n, p, frame, fusions in _t5_found(st):
        for f, (better, worse) in ((f, c) for f in fusions for c in T5_CLAIMS):
            a, b = t5_label(f, better), t5_label(f, worse)
            ledger.check_supported(
                _row_support("erl-mr-table5", T5_NAMES[f], better, worse, ERL_FAMILY[n]),
                f"{n}-erl-ablation-{f}-{better.lower().replace('+', '')}-vs-{worse.lower()}@{p}", PAPER,
                "Table 5", f"{T5_NAMES[f]}: {better} above {worse}", n, f"acc({better}) - acc({worse})",
                list(_fused(frame, a) - _fused(frame, b)), protocol=LABEL[p])


# --- Figs. 2-3 ---------------------------------------------------------------------------------------
def history_frame(st: Dict[tuple, tuple], labels=("Concatenation", "Concatenation" + DAGGER)) -> pd.DataFrame:
    """Per-epoch validation accuracy of each modality's own prediction (and fused), for the runs
    with `labels`, on the Fig. 2 datasets: (dataset, method, seed, epoch, modality, acc)."""
    rows = []
    for (n, p), (_, runs) in st.items():
        if n not in F2_DATASETS or p != "equal":
            continue
        for label, cfg, r in runs:
            if label not in labels:
                continue
            for h in r.history:
                for m, acc in {**h["val"]["per_modality"], "fused": h["val"]["acc"]}.items():
                    rows.append({"dataset": n, "panel": f"{n}: {m}", "method": label, "seed": cfg.seed,
                                 "epoch": h["epoch"] + 1, "modality": m, "acc": acc})
    return pd.DataFrame(rows)


def own_accuracy(st: Dict[tuple, tuple], labels, datasets) -> Dict[str, pd.DataFrame]:
    """Each modality's own test accuracy inside the model and the fused one (%), per dataset of
    `datasets` and protocol."""
    out = {}
    for (n, p), (frame, _) in st.items():
        d = frame[frame.method.isin(labels)]
        if d.empty or n not in datasets:
            continue
        t = agg_pm(d, ["method", "modality"], "per_modality_acc", unstack="modality").add_prefix("own acc: ")
        t["fused"] = fused_rows(d).groupby("method", sort=False).fused_acc.agg(pm)
        out[f"**{n}, {LABEL[p]}** (test %, mean ± sd over seeds)"] = t.reindex([l for l in labels if l in t.index])
    return out


def balance_claims(ledger, st: Dict[tuple, tuple], fusion: str = "Concatenation") -> None:
    """Fig. 2: with ERL-MR each modality's own accuracy ends above its accuracy without it."""
    for (n, p), (frame, _) in st.items():
        if n not in F2_DATASETS or not {fusion, fusion + DAGGER} <= set(frame.method):
            continue
        for m in frame[frame.method == fusion].modality.unique():
            ledger.check_supported(
                papers.in_figure("erl-mr", "Fig. 2", ("AVE", "MHAD", "FLASH"), ERL_FAMILY[n],
                                 "per-modality accuracy over training, with and without ERL-MR"),
                f"{n}-erl-raises-{m}@{p}", PAPER, "Fig. 2", f"With ERL-MR the {m} modality's own accuracy is higher",
                n, f"own acc({m}, {fusion}{DAGGER}) - own acc({m}, {fusion})",
                list(_own(frame, fusion + DAGGER, m) - _own(frame, fusion, m)), protocol=LABEL[p])


def three_modality_claims(ledger, st: Dict[tuple, tuple]) -> None:
    """Fig. 3 (FLASH, ADM; plotted only): ERL-MR improves concat and sum fusion, on the
    three-modality stand-in."""
    for (n, p), (frame, _) in st.items():
        if n != "mfeat" or not set(F3) <= set(frame.method):
            continue
        for name in ("Concatenation", "Summation"):
            ledger.check_supported(
                papers.in_figure("erl-mr", "Fig. 3", ("FLASH", "ADM"), ERL_FAMILY[n],
                                 "fused and per-modality accuracy over training, concat and sum, with and without"),
                f"{n}-erl-improves-{name.lower()}-3mod@{p}", PAPER, "Fig. 3", f"ERL-MR improves {name} with three "
                "modalities", n, f"acc({name}{DAGGER}) - acc({name})",
                list(_fused(frame, name + DAGGER) - _fused(frame, name)), protocol=LABEL[p])


def gain_rows(st: Dict[tuple, tuple]) -> tuple:
    """ERL-MR's gain over each plain fusion (Table 2), for the gains figure and erl_gains: (ours:
    dataset, protocol, panel, fusion, seed, gain as a fraction; paper: the same keys, paper
    dataset, gain in points)."""
    rep = papers.load_table("erl-mr-table2")
    ours, paper = [], []
    for n, found in _by_dataset(st, T2).items():
        for p, frame in found:
            where = {"dataset": n, "protocol": LABEL[p], "panel": f"{n}, {LABEL[p]}"}
            for f in FUSIONS:
                name = T2_NAMES[f]
                diff = _fused(frame, name + DAGGER) - _fused(frame, name)
                ours += [{**where, "fusion": name, "seed": s, "gain": v} for s, v in diff.items()]
                for ds in ERL_TABLE_DATASETS[n]:
                    v = rep[(rep.dataset == ds) & rep.method.isin([name, name + DAGGER])].set_index("method").value
                    paper.append({**where, "fusion": name, "paper dataset": ds,
                                  "gain": float(v[name + DAGGER] - v[name])})
    return pd.DataFrame(ours), pd.DataFrame(paper)
