"""MLA chapters 30-32: the paper's tables next to ours, and its claims as checks.

Each function builds one artifact from the studies of mmlab.configs.mla ({(dataset, protocol):
(imbalance frame, runs)}); the notebooks call one function per artifact (figures:
mmlab.papers.mla_figures). Reported numbers come from mmlab/papers/tables/mla-*.yaml.
"""
from __future__ import annotations

import re
from typing import Dict

import pandas as pd

from mmlab import papers
from mmlab.configs.mla import (FAMILY, MLA_ABLATION, MLA_CODE_FORMS, MLA_COLUMNS, MLA_ISOLATION_METHODS, MLA_MAIN,
                               MLA_MISSING_METHODS, MLA_PAPER_NAMES, MLA_PROTOCOLS, MLA_TABLES)
from mmlab.studies import agg_pm, fused_rows, long_frame, standings
from mmlab.studies import fused_by_seed as _fused, own_by_seed as _own

PAPER = "MLA"
LABEL = {p: pr.label for p, pr in MLA_PROTOCOLS.items()}


def _cols(n: str) -> Dict[str, str]:
    """Our modality -> the paper's column name for stand-in n."""
    return {ours: paper for paper, ours in MLA_COLUMNS[n].items()}


def overview(studies: Dict[tuple, tuple], profile: str) -> pd.DataFrame:
    """Per (dataset, protocol): what it stands in for, passes, seeds, runs."""
    return pd.DataFrame([{"dataset": n, "protocol": LABEL[p], "stands in for": MLA_PROTOCOLS[p].specs[n].stands_in_for,
                          "passes over train": MLA_PROTOCOLS[p].specs[n].sizes(profile).epochs,
                          "seeds": frame.seed.nunique(), "runs": len(runs)}
                         for (n, p), (frame, runs) in studies.items()]).set_index(["dataset", "protocol"])


def record_standings(ledger, studies: Dict[tuple, tuple]) -> None:
    """Where Table 1's rows stand, per dataset and protocol (the intro's scoreboard)."""
    for (n, p), (frame, _) in studies.items():
        rows = frame[frame.method.isin(list(MLA_MAIN) + ["unimodal"])]
        ledger.add_standings(standings(rows, LABEL[p], "chapter 30, MLA Table 1 rows"))


def _modality_table(frame: pd.DataFrame, labels) -> pd.DataFrame:
    """Rows = labels (+ each modality alone): each modality's own accuracy inside the model and
    the fused ("Multi") accuracy, mean ± sd over seeds in %."""
    d = frame[frame.method.isin(labels)]
    t = agg_pm(d, ["method", "modality"], "per_modality_acc", unstack="modality").reindex(list(labels))
    t["Multi"] = agg_pm(fused_rows(d), "method", "fused_acc")
    uni = frame[frame.method == "unimodal"]
    for m, g in uni.groupby("modality", sort=False):
        t.loc[f"{m} alone", m] = agg_pm(g.assign(k=0), "k", "unimodal_acc").iloc[0]
    return t


def accuracy(studies: Dict[tuple, tuple]) -> Dict[str, pd.DataFrame]:
    """Table 1 / 5 layout per (dataset, protocol): per-modality and multimodal test accuracy."""
    return {f"**{n}, {LABEL[p]}** (test accuracy %, mean ± sd over seeds; a modality's column = that "
            "modality's own prediction inside the model)": _modality_table(frame, MLA_MAIN)
            for (n, p), (frame, _) in studies.items()}


def paper_accuracy(studies: Dict[tuple, tuple]) -> Dict[str, pd.DataFrame]:
    """MLA Table 1 (reported) vs ours, one collapsed table per stand-in (both protocols)."""
    out = {}
    for n in dict.fromkeys(n for n, _ in studies):
        tables = []
        for p in [p for m, p in studies if m == n]:
            frame = studies[n, p][0]
            d = frame[frame.method.isin(MLA_MAIN)]
            ours = pd.concat([long_frame(d, "fused_acc", "Multi", dedupe=True), long_frame(d, "per_modality_acc", _cols(n))])
            mp = papers.mapping_for("mla-table1", MLA_PAPER_NAMES, {**{c: c for c in MLA_COLUMNS[n]}, "Multi": "Multi"},
                                    MLA_TABLES[n])
            tables.append(papers.paper_vs_ours(ours, "mla-table1", mp, our_dataset=f"{n}, {LABEL[p]}"))
        out[f"**MLA Table 1 ({', '.join(MLA_TABLES[n])}, reported) vs ours ({n})**"] = papers.collapse(*tables)
    return out


def code_forms(studies: Dict[tuple, tuple]) -> Dict[str, pd.DataFrame]:
    """The paper's MLA beside the authors' code and a toolkit's forms, per (dataset, protocol)."""
    return {f"**{n}, {LABEL[p]}** (test accuracy %)": _modality_table(frame, MLA_CODE_FORMS).loc[list(MLA_CODE_FORMS)]
            for (n, p), (frame, _) in studies.items()}


def ablation(studies: Dict[tuple, tuple]) -> Dict[str, pd.DataFrame]:
    """Table 3: head gradient modification (HGM) x dynamic fusion (DF), ours beside the paper's."""
    out = {}
    for n in dict.fromkeys(n for n, _ in studies):
        tables = []
        for p in [p for m, p in studies if m == n]:
            d = studies[n, p][0]
            d = d[d.method.isin(MLA_ABLATION)]
            ours = pd.concat([long_frame(d, "fused_acc", "Multi", dedupe=True), long_frame(d, "per_modality_acc", _cols(n))])
            mp = papers.mapping_for("mla-table3", {k: k for k in MLA_ABLATION},
                                    {**{c: c for c in MLA_COLUMNS[n]}, "Multi": "Multi"}, MLA_TABLES[n])
            tables.append(papers.paper_vs_ours(ours, "mla-table3", mp, our_dataset=f"{n}, {LABEL[p]}"))
        out[f"**MLA Table 3 ({', '.join(MLA_TABLES[n])}, reported) vs ours ({n})**"] = papers.collapse(*tables)
    return out


def _slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def accuracy_claims(ledger, studies: Dict[tuple, tuple]) -> None:
    """Table 1: MLA above every other row (Multi); MLA's weak modality above concat's; Table 3:
    HGM and DF each help, per (dataset, protocol)."""
    for (n, p), (frame, _) in studies.items():
        fam, tag, w = FAMILY[n], f"@{p}", MLA_PROTOCOLS[p].specs[n].dominated
        for paper_name, ours in MLA_PAPER_NAMES.items():
            if ours == "MLA":
                continue
            ledger.check_supported(papers.comparison("mla-table1", "MLA", paper_name, "Multi", fam),
                                   f"{n}-mla-beats-{_slug(ours)}{tag}", PAPER, "Table 1",
                                   f"MLA is more accurate than {ours}", n, f"acc(MLA) - acc({ours})",
                                   list(_fused(frame, "MLA") - _fused(frame, ours)), protocol=LABEL[p])
        wcol = _cols(n)[w]
        ledger.check_supported(papers.comparison("mla-table1", "MLA", "Concat", wcol, fam),
                               f"{n}-mla-weak-above-concat{tag}", PAPER, "Table 1",
                               f"MLA's weak modality ({w}) predicts better than concat's (less laziness)", n,
                               f"own acc(MLA, {w}) - own acc(concat, {w})",
                               list(_own(frame, "MLA", w) - _own(frame, "concat", w)), protocol=LABEL[p])
        for key, better, worse, what in (("hgm", "HGM on, DF on", "HGM off, DF on", "Head gradient modification"),
                                         ("df", "HGM on, DF on", "HGM on, DF off", "Dynamic fusion"),
                                         ("both", "HGM on, DF on", "HGM off, DF off", "HGM and DF together")):
            ledger.check_supported(papers.comparison("mla-table3", better, worse, "Multi", fam),
                                   f"{n}-mla-ablation-{key}{tag}",
                                   PAPER, "Table 3", f"{what} improves MLA ({worse} -> {better})", n,
                                   f"acc({better}) - acc({worse})",
                                   list(_fused(frame, better) - _fused(frame, worse)), protocol=LABEL[p])


# --- chapter 31: missing modalities and modality isolation -----------------------------------
def missing_frame(runs) -> pd.DataFrame:
    """(method, missing rate, seed, acc) of Table 2's runs ("<method> @ <rate>" labels)."""
    return pd.DataFrame([{"method": label.rsplit(" @ ", 1)[0], "missing rate": cfg.missing_rate, "seed": cfg.seed,
                          "acc": r.metrics["test"]["acc"]} for label, cfg, r in runs if " @ " in label])


def missing_table(mf: pd.DataFrame) -> pd.DataFrame:
    """Table 2 layout: test accuracy % (mean ± sd) per method and missing rate."""
    return agg_pm(mf, ["method", "missing rate"], "acc", unstack="missing rate").reindex(list(MLA_MISSING_METHODS))


def paper_missing(mf: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """MLA Table 2 (IEMOCAP, reported) vs ours at the rates both have."""
    rates = sorted(mf["missing rate"].unique())
    ours = pd.DataFrame({"method": mf.method, "column": [f"missing {round(100 * r)}%" for r in mf["missing rate"]],
                         "seed": mf.seed, "value": mf.acc})
    cols = [f"missing {round(100 * r)}%" for r in rates]
    mp = papers.mapping_for("mla-table2", {k: k for k in MLA_MISSING_METHODS}, {c: c for c in cols}, ("IEMOCAP",))
    t = papers.collapse(papers.paper_vs_ours(ours, "mla-table2", mp, our_dataset=f"{dataset}, equal budget"))
    # the paper's other baselines (CCA, DCCA, DCCAE, CRA, IF-MMIN, CPM-Net, TATE): reported only
    rep = papers.load_table("mla-table2")
    rep = rep[~rep.method.isin(MLA_MISSING_METHODS) & rep.column.isin(cols)]
    others = pd.DataFrame({t.columns[0]: [f"{v:.2f}" for v in rep.value], t.columns[1]: "— (not run here)"},
                          index=pd.MultiIndex.from_arrays([rep.method, rep.column], names=t.index.names))
    return pd.concat([t, others])


def missing_claims(ledger, mf: pd.DataFrame, dataset: str) -> None:
    """Table 2: MLA above each baseline, averaged over the missing rates (paired per seed)."""
    rates = sorted(mf["missing rate"].unique())
    cols = [f"missing {round(100 * r)}%" for r in rates]
    mean = mf.groupby(["method", "seed"]).acc.mean()
    for b in MLA_MISSING_METHODS:
        if b == "MLA" or b not in mean.index.get_level_values(0):
            continue
        ledger.check_supported(papers.comparison("mla-table2", "MLA", b, cols, FAMILY[dataset]),
                               f"{dataset}-mla-missing-beats-{b.lower().replace(' ', '-')}", PAPER, "Table 2",
                               f"With missing modalities MLA is more accurate than {b} (mean over the rates)", dataset,
                               f"mean over rates of acc(MLA) - acc({b})", list(mean["MLA"] - mean[b]),
                               protocol=LABEL["equal"])


def isolation_frame(runs, modalities) -> pd.DataFrame:
    """Fig. 2: (method, masked modality, ratio, seed, evaluated modality, own accuracy)."""
    rows = []
    for label, cfg, r in runs:
        if label == "unimodal":
            continue
        method = label.split(", ")[0]
        masked, ratio = (next(iter(cfg.train_missing.items())) if cfg.train_missing else (None, 0.0))
        for m, acc in r.metrics["test"]["per_modality"].items():
            for mm in ([masked] if masked else modalities):      # ratio 0 is the start of every curve
                rows.append({"method": method, "masked": mm, "ratio": ratio, "seed": cfg.seed, "modality": m,
                             "acc": acc})
    return pd.DataFrame(rows)


def isolation_claims(ledger, iso: pd.DataFrame, dataset: str) -> None:
    """Fig. 2: masking one modality's training data costs QMF more of the OTHER modality's
    accuracy than it costs MLA (drop from ratio 0 to the largest ratio, paired per seed)."""
    top = iso.ratio.max()
    for masked in dict.fromkeys(iso.masked):
        other = [m for m in dict.fromkeys(iso.modality) if m != masked]
        if not other or top <= 0:
            continue
        o = other[0]
        d = iso[(iso.masked == masked) & (iso.modality == o)]
        drop = {k: (d[(d.method == k) & (d.ratio == 0)].set_index("seed").acc
                    - d[(d.method == k) & (d.ratio == top)].set_index("seed").acc) for k in MLA_ISOLATION_METHODS}
        ledger.check_supported(papers.in_figure("mla", "Fig. 2", ("Kinetics-Sounds",), FAMILY[dataset]),
                               f"{dataset}-mla-isolation-{masked}", PAPER, "Fig. 2",
                               f"Without {masked} training data, QMF's {o} accuracy drops more than MLA's", dataset,
                               f"drop of {o} acc, QMF - MLA ({masked} {top:g} missing in train)",
                               list(drop["QMF"] - drop["MLA"]), protocol=LABEL["equal"])


# --- chapter 32: the modality gap and pretrained encoders ------------------------------------
def gap_history(runs) -> pd.DataFrame:
    """(method, seed, epoch, pair, gap) from runs tracked with track=("modality_gap",)."""
    return pd.DataFrame([{"method": label, "seed": cfg.seed, "epoch": h["epoch"] + 1, "pair": pair, "gap": g}
                         for label, cfg, r in runs if label != "unimodal"
                         for h in r.history for pair, g in h.get("track", {}).get("modality_gap", {}).items()])


def gap_table(rows: pd.DataFrame) -> pd.DataFrame:
    """The test-set modality gap per method and pair (mean ± sd over seeds, raw distance)."""
    long = pd.DataFrame([{"method": r.method, "seed": r.seed, "pair": p, "gap": g}
                         for r in rows.itertuples() for p, g in r.gaps.items()])
    return agg_pm(long, ["method", "pair"], "gap", unstack="pair").rename_axis(columns="modality pair (test gap)") \
        if len(long) else long


def gap_claims(ledger, rows: pd.DataFrame, dataset: str) -> None:
    """Fig. 3: MLA's modality gap is larger than concat's (the paper shows it on Food-101)."""
    g = {lab: rows[rows.method == lab].set_index("seed").gaps.map(lambda d: next(iter(d.values())))
         for lab in ("MLA", "concat")}
    ledger.check_supported(papers.in_figure("mla", "Fig. 3", ("Food-101",), FAMILY[dataset]),
                           f"{dataset}-mla-larger-gap", PAPER, "Fig. 3",
                           "MLA enlarges the modality gap compared with concat", dataset,
                           "gap(MLA) - gap(concat), test", list(g["MLA"] - g["concat"]), unit="ratio",
                           protocol=LABEL["equal"])


def pretrained_table(frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Tables 4 / 7 (Food-101 with CLIP, reported) vs ours (pretrained encoders on mfeat)."""
    from mmlab.configs.mla import MLA_T4_COLUMNS, MLA_T4_NAMES
    return papers.modalities_vs_paper(frame, "mla-table4", MLA_T4_NAMES, MLA_T4_COLUMNS,
                                      f"{dataset}, pretrained encoders")


def pretrained_claims(ledger, frame: pd.DataFrame, dataset: str) -> None:
    """Table 4: with pretrained encoders, MLA above joint fine-tuning on the weak and the strong
    modality's own accuracy and on the fused one (the stand-in represents the CLIP setting)."""
    from mmlab.configs.mla import MLA_T4_COLUMNS, MLA_T4_NAMES
    mla_, base = MLA_T4_NAMES["CLIP + MLA"], MLA_T4_NAMES["CLIP"]
    checks = [("Multi", list(_fused(frame, mla_) - _fused(frame, base)), "fused accuracy")]
    checks += [(col, list(_own(frame, mla_, m) - _own(frame, base, m)), f"{m}'s own accuracy")
               for col, m in MLA_T4_COLUMNS.items()]
    for col, diffs, what in checks:
        ledger.check_supported(papers.comparison("mla-table4", "CLIP + MLA", "CLIP", col, ("Food-101",)),
                               f"{dataset}-mla-pretrained-{col.lower()}", PAPER, "Table 4",
                               f"With pretrained encoders MLA improves the {what} over joint fine-tuning", dataset,
                               f"acc(MLA) - acc(concat), pretrained encoders, {what}", diffs, protocol=LABEL["equal"])
