"""ReconBoost chapters 40-43: the paper's tables next to ours, and its claims as checks.

Each function builds one artifact from the studies of mmlab.configs.reconboost (`Studies`,
the fusion and ablation studies); the notebooks call one function per artifact and show its
result (figures: mmlab.papers.reconboost_figures). Reported numbers come from
mmlab/papers/tables/reconboost-*.yaml.
"""
from __future__ import annotations

from typing import Dict

import pandas as pd

from mmlab import papers
from mmlab.claims import paired_diffs
from mmlab.configs.reconboost import (FAMILY, RB_FORMS, RB_FUSION_ROWS, RB_NOISE_ALONE, RB_NOISE_NAMES,
                                      RB_NOISE_TABLES, RB_NOISE_VARIANCES, RB_NOISE_WHAT, RB_OURS_NAMES,
                                      RB_PAPER_NAMES, RB_PROTOCOLS, RB_T13_COLUMNS, RB_T13_NAMES, RB_T14_COLUMNS,
                                      RB_T16_NAMES, RB_TABLES, RB_VIEWS, Studies)
from mmlab.studies import (accuracy_table, agg_pm, fmt_pm, fused_rows, long_frame, mir_dmc_frame, pm, signed_pm,
                           standings, stopped_runs)

# rows of the paper's probe / retrieval / MIR tables: paper row -> our label ("Ours" = the reference form)
_T5_ROWS = {"Uni-train": "unimodal", "Concat Fusion": "concat", "OGM-GE": "OGM-GE", "PMR": "PMR", "UMT": "UMT"}
_T11_ROWS = {"Concat Fusion": "concat", "G-Blending": "G-Blending", "OGM-GE": "OGM-GE", "PMR": "PMR", "UMT": "UMT"}
_T7_ROWS = {"Concat Fusion": "concat", "OGM-GE": "OGM-GE", "PMR": "PMR", "UME": "UME", "UMT": "UMT"}
ANALYSED = ("unimodal", "concat", "OGM-GE", "PMR", "UMT")     # the rows of the encoder analyses (+ the reference)


def _per(s_runs: Dict[tuple, tuple], label: Dict[str, str], fn) -> pd.DataFrame:
    return pd.concat({(n, label[p]): fn(v) for (n, p), v in s_runs.items()})


# --- chapter 40: accuracy --------------------------------------------------------------------
def overview(s: Studies) -> pd.DataFrame:
    """Per (dataset, protocol): what the study stands in for, passes, seeds and runs."""
    return pd.DataFrame([{"dataset": n, "protocol": s.label[p], "stands in for": RB_PROTOCOLS[p].specs[n].stands_in_for,
                          "passes over train (every method)": RB_PROTOCOLS[p].specs[n].sizes(s.profile).epochs,
                          "seeds": s.runs[n, p][0].seed.nunique(), "runs": len(s.runs[n, p][1])}
                         for n, p in s.runs]).set_index(["dataset", "protocol"])


def record_standings(ledger, s: Studies) -> None:
    """Where each Table 1 / 2 row stands, per dataset and protocol (the intro's scoreboard)."""
    for (n, p), (frame, _) in s.runs.items():
        if frame is not None:
            ledger.add_standings(standings(frame, s.label[p], "chapter 40, ReconBoost Tables 1-2 rows"))


def recipes(s: Studies, methods) -> Dict[str, object]:
    """Each method's recipe per dataset and protocol, compact (one cell per method and (dataset,
    protocol): optimizer, lr, momentum, weight decay and options), each cell citing its source
    as [k]; for mmlab.notebook.show: {title with the numbered sources: table}."""
    cells, sources = {}, {}
    for n in s.datasets:
        for p in s.protocols:
            for m in methods:
                r = RB_PROTOCOLS[p].recipe(n, m)
                k = sources.setdefault(r.source, len(sources) + 1)
                opt = f"{r.optimizer.upper() if r.optimizer == 'sgd' else r.optimizer.capitalize()} {r.lr:g}"
                if r.optimizer == "sgd":
                    opt += f", momentum {r.momentum:g}"
                opt += f", wd {r.weight_decay:g}" if r.weight_decay else ""
                opts = ", ".join(f"{a} = {b}" for a, b in r.method_options.items())
                cells.setdefault(m, {})[n, s.label[p]] = f"{opt}{'; ' + opts if opts else ''} [{k}]"
    table = pd.DataFrame.from_dict(cells, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns, names=["dataset", "protocol"])
    notes = "\n".join(f"{k}. {src}" for src, k in sources.items())
    return {f"Each method's optimizer (wd = weight decay), options and source [k]:\n\n{notes}": table}


def stopped(runs: Dict[tuple, tuple], label: Dict[str, str]) -> pd.DataFrame:
    """The runs a diverged objective stopped, per (dataset, protocol); empty when none."""
    if not runs:
        return pd.DataFrame()
    return _per(runs, label, lambda v: stopped_runs(v[1]))


def accuracy(s: Studies) -> pd.DataFrame:
    """Tables 1-2 layout: test accuracy mean ± std per method, one column per (dataset, protocol)."""
    return pd.concat({(n, s.label[p]): accuracy_table(s.runs[n, p][0]) for n, p in s.runs}, axis=1).fillna("—")


def form_validation(s: Studies) -> tuple:
    """(mean validation accuracy % of the two ReconBoost forms, the reference form per run)."""
    val = pd.DataFrame({(n, s.label[p]): {f: 100 * pd.Series([r.metrics["val"]["acc"] for lab, _, r in runs
                                                               if lab == f]).mean() for f in RB_FORMS}
                        for (n, p), (_, runs) in s.runs.items()})
    ref = pd.Series({f"{n}, {s.label[p]}": r for (n, p), r in s.ref.items()}, name="reference form").to_frame()
    return val.round(1), ref


def objective(s: Studies) -> pd.DataFrame:
    """Training loss per pass of the two ReconBoost forms (dataset, protocol, method, seed, epoch)."""
    return pd.DataFrame([{"dataset": n, "protocol": s.label[p], "method": lab, "seed": c.seed, "epoch": row["epoch"] + 1,
                          "train loss": row["train"]["loss"]}
                         for (n, p), (_, runs) in s.runs.items() for lab, c, r in runs if lab in RB_FORMS
                         for row in r.history])


def paper_accuracy(s: Studies) -> Dict[str, pd.DataFrame]:
    """ReconBoost Table 1 / 2 (reported) vs ours, one collapsed table per dataset, by title."""
    out = {}
    for n in s.datasets:
        tid = RB_TABLES[n]
        pds = [d for d in papers.load_table(tid).dataset.unique() if d in FAMILY[n]]
        tables = []
        for p in s.protocols:
            frame = s.runs[n, p][0]
            ours = pd.concat([long_frame(fused_rows(frame), "fused_acc", "fused"),
                              long_frame(frame[frame.method == "unimodal"], "unimodal_acc")])
            mp = papers.mapping_for(tid, {**RB_OURS_NAMES, "Ours": s.ref[n, p]}, {"Acc": "fused"}, pds)
            for pm_, mod in RB_VIEWS[n].items():
                mp.update(papers.mapping_for(tid, {pm_: "unimodal"}, {"Acc": mod}, pds))
            tables.append(papers.paper_vs_ours(ours, tid, mp, our_dataset=f"{n}, {s.label[p]}"))
        title = f"**ReconBoost {papers.table_info(tid)['table']} (reported) vs ours ({n}); 'Ours' = the reference form**"
        out[title] = papers.collapse(*tables)
    return out


def fusion_accuracy(fus: Dict[tuple, tuple], label: Dict[str, str]):
    """Table 4 layout: overall and per-modality accuracy of each fusion variant, or None."""
    per_mod = {}
    for (n, p), (frame, _) in fus.items():
        d = frame[frame.method != "unimodal"]
        t = agg_pm(d, ["method", "modality"], "per_modality_acc", unstack="modality")
        t.insert(0, "overall", agg_pm(fused_rows(d), "method", "fused_acc"))
        per_mod[n, label[p]] = t
    return pd.concat(per_mod, axis=1) if per_mod else None


def paper_fusion(fus: Dict[tuple, tuple], label: Dict[str, str]):
    """ReconBoost Table 14 (reported) vs ours, or None without fusion studies."""
    tables = []
    for (n, p), (frame, _) in fus.items():
        d = frame[frame.method != "unimodal"]
        ours = pd.concat([long_frame(d, "fused_acc", "overall", dedupe=True), long_frame(d, "per_modality_acc")])
        mp = papers.mapping_for("reconboost-table14", {k: k for k in RB_FUSION_ROWS}, RB_T14_COLUMNS, ("AVE", "CREMA-D"))
        tables.append(papers.paper_vs_ours(ours, "reconboost-table14", mp, our_dataset=f"{n}, {label[p]}"))
    return papers.collapse(*tables) if tables else None


def dmc_improvement(s: Studies) -> pd.DataFrame:
    """Table 12 layout per (dataset, protocol): concat's DMC, concat and ReconBoost accuracy and
    the relative improvement; columns dmc / imp hold the numbers of the scatter."""
    rows = []
    for (n, p), (frame, _) in s.runs.items():
        dm = mir_dmc_frame(frame, method="concat")
        j = frame.drop_duplicates(["method", "seed"]).pivot(index="seed", columns="method", values="fused_acc")
        r = s.ref[n, p]
        imp = (j[r] - j["concat"]) / j["concat"]
        rows.append({"dataset": n, "protocol": s.label[p],
                     "concat DMC": fmt_pm(dm.dmc.mean(), dm.dmc.std(), scale=1, digits=2),
                     "concat acc": fmt_pm(j["concat"].mean(), j["concat"].std()),
                     "ReconBoost acc": fmt_pm(j[r].mean(), j[r].std()),
                     "relative improvement %": fmt_pm(imp.mean(), imp.std()), "dmc": dm.dmc.mean(),
                     "imp": imp.mean() * 100})
    return pd.DataFrame(rows).set_index(["dataset", "protocol"])


def dmc_trend(s: Studies, t12: pd.DataFrame) -> str:
    """Markdown: per protocol, whether the DMC ordering of the datasets matches the ordering of
    the relative improvement (the paper's trend); empty with one dataset."""
    lines = []
    for p in s.protocols:
        t = t12.xs(s.label[p], level="protocol")
        if len(t) > 1:
            agree = t["dmc"].idxmax() == t["imp"].idxmax()
            lines.append(f"{s.label[p]}: higher DMC on **{t['dmc'].idxmax()}**, larger relative improvement on "
                         f"**{t['imp'].idxmax()}** — " + ("the ordering agrees with the paper's trend." if agree else
                         "the ordering does **not** agree with the paper's trend.") +
                         " With two datasets this is an ordering, not a correlation.")
    return "\n\n".join(lines)


def gain(s: Studies) -> pd.DataFrame:
    """Acc(all) - Acc(best modality alone) in points per method and seed (Fig. 6 / 11)."""
    out = []
    for (n, p), (frame, _) in s.runs.items():
        best = frame[frame.method == "unimodal"].groupby("seed").unimodal_acc.max()
        j = fused_rows(frame)
        out.append(j.assign(gain=(j.fused_acc.values - best.loc[j.seed].values) * 100, dataset=n,
                            protocol=s.label[p])[["dataset", "protocol", "method", "seed", "gain"]])
    return pd.concat(out)


def gain_table(g: pd.DataFrame) -> pd.DataFrame:
    return g.groupby(["dataset", "protocol", "method"], sort=False).gain.agg(signed_pm).unstack(["dataset", "protocol"])


def accuracy_claims(ledger, s: Studies, fus: Dict[tuple, tuple]) -> None:
    """Tables 1-2 and 4 / 14 claims, per dataset and protocol."""
    for (n, p), (frame, _) in s.runs.items():
        j, tid, r = frame.drop_duplicates(["method", "seed"]), RB_TABLES[n], s.ref[n, p]
        for b in RB_PAPER_NAMES:
            ledger.check_supported(
                papers.comparison(tid, "Ours", RB_PAPER_NAMES[b], "Acc", FAMILY[n]), f"{n}-rb-beats-{b}@{p}",
                "ReconBoost", "Tables 1-2", f"ReconBoost is more accurate than {b}", n,
                f"acc({r}) - acc({b})", paired_diffs(j, {"method": r}, {"method": b}, "fused_acc"), protocol=s.label[p])
        for b in [b for b in RB_PAPER_NAMES if b != "concat"]:
            ledger.check_supported(
                papers.comparison(tid, RB_PAPER_NAMES[b], "Concat Fusion", "Acc", FAMILY[n]), f"{n}-{b}-beats-concat@{p}",
                "ReconBoost", "Tables 1-2", f"{b} improves on concatenation fusion", n, f"acc({b}) - acc(concat)",
                paired_diffs(j, {"method": b}, {"method": "concat"}, "fused_acc"), protocol=s.label[p])
    for (n, p), (frame, _) in fus.items():
        j = frame.drop_duplicates(["method", "seed"])
        for r in ["LW", "TMC", "QMF"]:
            ledger.check_supported(
                papers.comparison("reconboost-table14", f"Ours + {r}", "Ours + NA", "Overall Acc", FAMILY[n]),
                f"{n}-rb-{r.lower()}-beats-na@{p}", "ReconBoost", "Tables 4 / 14", f"ReconBoost + {r} is more accurate "
                "than ReconBoost + NA", n, f"acc(+{r}) - acc(+NA)",
                paired_diffs(j, {"method": f"Ours + {r}"}, {"method": "Ours + NA"}, "fused_acc"), protocol=s.label[p])
        for b in ["OGM-GE + MMTM", "PMR + MMTM", "UMT + MMTM"]:
            ledger.check_supported(
                papers.comparison("reconboost-table14", "Ours + NA", b, "Overall Acc", FAMILY[n]),
                f"{n}-rb-na-beats-{b.split()[0].lower()}-mmtm@{p}", "ReconBoost", "Tables 4 / 14",
                f"ReconBoost + NA is more accurate than {b}", n, f"acc(+NA) - acc({b})",
                paired_diffs(j, {"method": "Ours + NA"}, {"method": b}, "fused_acc"), protocol=s.label[p])


# --- chapter 41: encoders --------------------------------------------------------------------
def encoder_overview(s: Studies) -> pd.DataFrame:
    """Per (dataset, protocol): the reference form chosen on val and the number of runs."""
    return pd.DataFrame([{"dataset": n, "protocol": s.label[p], "reference ReconBoost (chosen on val)": s.ref[n, p],
                          "runs": len(s.runs[n, p][1])} for n, p in s.runs]).set_index(["dataset", "protocol"])


def reference_note(s: Studies) -> str:
    """Markdown naming the reference form per protocol."""
    return ("ReconBoost here is the reference form chosen on validation accuracy in chapter 40: "
            + ", ".join(f"**{s.ref[n, p]}** ({s.label[p]})" for n, p in s.ref) + ".")


def probes(s: Studies) -> Dict[str, pd.DataFrame]:
    """Linear-probe accuracy of each frozen encoder (and a random one), one table per dataset."""
    t = {}
    for (n, p), (frame, _) in s.runs.items():
        tab = agg_pm(frame, ["method", "modality"], "probe", unstack="modality")
        tab.loc["random encoder"] = agg_pm(frame[frame.method == "concat"], "modality", "probe_random")
        t[n, s.label[p]] = tab
    return {f"**{n}**: linear-probe test accuracy % of each frozen encoder (mean ± std over seeds)":
            pd.concat({k[1]: v for k, v in t.items() if k[0] == n}, axis=1) for n in s.datasets}


def _avmnist_tables(s: Studies, tid: str, rows: dict, columns: dict, ours, scale: float = 100.0, digits: int = 1):
    """paper_vs_ours of table `tid` for avmnist under each protocol, collapsed; `ours(p)` gives
    our long frame; rows: paper row -> our label, plus "Ours" = the reference form."""
    tables = [papers.paper_vs_ours(ours(p), tid, papers.mapping_for(tid, {**rows, "Ours": s.ref["avmnist", p]},
                                                                    columns),
                                   our_dataset=f"avmnist, {s.label[p]}", scale=scale, digits=digits)
              for p in s.protocols]
    return papers.collapse(*tables)


def paper_probes(s: Studies):
    """ReconBoost Table 5 (reported) vs ours (avmnist), or None without avmnist."""
    if "avmnist" not in s.datasets:
        return None
    return _avmnist_tables(s, "reconboost-table5", _T5_ROWS, {"Audio": "audio", "Visual": "image"},
                           lambda p: long_frame(s.runs["avmnist", p][0], "probe"))


def probe_kinds(s: Studies, fn) -> Dict[str, pd.DataFrame]:
    """Table 15: probes of several depths on avmnist per protocol ({protocol: rows of fn})."""
    from mmlab.studies import per_model
    if "avmnist" not in s.datasets:
        return {}
    max_train = RB_PROTOCOLS[s.protocols[0]].specs["avmnist"].sizes(s.profile).probe_max_train
    return {p: per_model(s.runs["avmnist", p][1], fn, [*ANALYSED, s.ref["avmnist", p]], max_train=max_train)
            for p in s.protocols}


def probe_kinds_table(s: Studies, t15: Dict[str, pd.DataFrame]):
    if not t15:
        return None
    return pd.concat({s.label[p]: agg_pm(t, ["method", "probe", "modality"], "acc", unstack=["probe", "modality"])
                      for p, t in t15.items()})


def paper_probe_kinds(s: Studies, t15: Dict[str, pd.DataFrame]):
    """ReconBoost Table 15 (reported) vs ours (avmnist), or None."""
    if not t15:
        return None
    cols = {f"{pr} {v}": f"{pr} {v}" for pr in ("FC", "FC+Relu+FC", "FC+Relu+FC+Relu+FC") for v in ("Visual", "Audio")}
    names = {"audio": "Audio", "image": "Visual"}
    return _avmnist_tables(s, "reconboost-table15", _T5_ROWS, cols, lambda p: pd.DataFrame(
        {"method": t15[p].method, "column": t15[p].probe + " " + t15[p].modality.map(names), "seed": t15[p].seed,
         "value": t15[p].acc}))


def mir(s: Studies) -> pd.DataFrame:
    """MIR (alone, joint) and DMC per (dataset, protocol, method, seed), every joint method."""
    return pd.concat([mir_dmc_frame(frame, method=m).assign(protocol=s.label[p])
                      for (n, p), (frame, _) in s.runs.items() for m in frame.method.unique() if m != "unimodal"])


def mir_table(mirs: pd.DataFrame) -> pd.DataFrame:
    return mirs.groupby(["dataset", "protocol", "method"], sort=False)[["mir_uni", "mir_mul", "dmc"]].agg(
        pm, scale=1, digits=2).rename(columns={"mir_uni": "MIR alone", "mir_mul": "MIR joint", "dmc": "DMC"})


def _columns(d: pd.DataFrame, cols) -> pd.DataFrame:
    """Long (method, column, seed, value) rows of several value columns {paper column: ours}."""
    return pd.concat([pd.DataFrame({"method": d.method, "column": c, "seed": d.seed, "value": d[v]})
                      for c, v in cols])


def paper_mir(s: Studies, mirs: pd.DataFrame):
    """ReconBoost Table 11 (reported) vs ours (avmnist), or None."""
    if "avmnist" not in s.datasets:
        return None
    av = mirs[mirs.dataset == "avmnist"]
    return _avmnist_tables(s, "reconboost-table11", _T11_ROWS, {"MIR": "MIR", "DMC": "DMC"},
                           lambda p: _columns(av[av.protocol == s.label[p]], (("MIR", "mir_mul"), ("DMC", "dmc"))),
                           scale=1.0, digits=2)


def retrieval(s: Studies, fn) -> pd.DataFrame:
    """Retrieval mAP rows (fn: mmlab.analysis.retrieval_rows) per (dataset, protocol, method, seed)."""
    from mmlab.studies import per_model
    return pd.concat([per_model(runs, fn, ["concat", "OGM-GE", "PMR", "UME", "UMT", *RB_FORMS]).assign(
        protocol=s.label[p]) for (n, p), (_, runs) in s.runs.items()])


def retrieval_table(ret: pd.DataFrame) -> pd.DataFrame:
    cols = ["overall"] + [c for c in ret.columns if c not in ("dataset", "protocol", "method", "seed", "overall")]
    return ret.groupby(["dataset", "protocol", "method"], sort=False)[cols].agg(pm)


def paper_retrieval(s: Studies, ret: pd.DataFrame):
    """ReconBoost Table 7 (reported) vs ours (avmnist), or None."""
    if "avmnist" not in s.datasets:
        return None
    av = ret[ret.dataset == "avmnist"]
    cols = (("MAP", "overall"), ("Audio MAP", "audio"), ("Visual MAP", "image"))
    return _avmnist_tables(s, "reconboost-table7", _T7_ROWS, {c: c for c, _ in cols},
                           lambda p: _columns(av[av.protocol == s.label[p]], cols))


def tsne_dataset(s: Studies) -> str:
    return "avmnist" if "avmnist" in s.datasets else s.datasets[0]


def tsne(s: Studies, fn) -> Dict[str, pd.DataFrame]:
    """t-SNE rows (fn: mmlab.analysis.tsne_rows) of the first seed per protocol."""
    from mmlab.studies import per_model
    n = tsne_dataset(s)
    out = {}
    for p in s.protocols:
        first = min(s.runs[n, p][0].seed)
        runs = [r for r in s.runs[n, p][1] if r[1].seed == first]
        out[p] = per_model(runs, fn, [*ANALYSED, s.ref[n, p]], max_points=300 if s.profile == "smoke" else 600)
    return out


def clusters(s: Studies, fn) -> pd.DataFrame:
    """Cluster scores (fn: mmlab.analysis.cluster_rows) per (dataset, protocol, method, modality, seed)."""
    from mmlab.studies import per_model
    return pd.concat([per_model(runs, fn, [*ANALYSED, s.ref[n, p]]).assign(protocol=s.label[p])
                      for (n, p), (_, runs) in s.runs.items()])


def clusters_table(cl: pd.DataFrame) -> pd.DataFrame:
    return cl.groupby(["dataset", "protocol", "method", "modality"], sort=False)[["silhouette", "knn_acc"]].agg(
        pm, scale=1, digits=3).unstack("modality")


def encoder_claims(ledger, s: Studies, mirs: pd.DataFrame, ret: pd.DataFrame, cl: pd.DataFrame) -> None:
    """Tables 5, 7, 11 and Figs. 4 / 12 claims, per dataset and protocol."""
    for (n, p), (frame, _) in s.runs.items():
        w, r, fam, lp = RB_PROTOCOLS[p].specs[n].dominated, s.ref[n, p], FAMILY[n], s.label[p]
        ledger.check_supported(
            papers.comparison("reconboost-table5", "Ours", "Concat Fusion", "Visual", fam),
            f"{n}-rb-weak-probe-vs-concat@{p}", "ReconBoost", "Table 5",
            f"ReconBoost's weak-modality ({w}) encoder probes better than concat's", n,
            f"probe(ReconBoost) - probe(concat), {w}",
            paired_diffs(frame, {"method": r, "modality": w}, {"method": "concat", "modality": w}, "probe"), protocol=lp)
        ledger.check_supported(
            papers.comparison("reconboost-table5", "Ours", "Uni-train", "Visual", fam), f"{n}-rb-weak-probe-vs-alone@{p}",
            "ReconBoost", "Table 5", f"ReconBoost's weak-modality ({w}) encoder surpasses the same encoder "
            "trained alone", n, f"probe(ReconBoost) - probe(alone), {w}",
            paired_diffs(frame, {"method": r, "modality": w}, {"method": "unimodal", "modality": w}, "probe"),
            protocol=lp)
        d = mirs[(mirs.dataset == n) & (mirs.protocol == lp)]
        ledger.check_supported(
            papers.threshold("reconboost-table11", "Ours", "DMC", fam, below=1.0), f"{n}-rb-dmc-below-1@{p}",
            "ReconBoost", "Table 11", "ReconBoost narrows the modality gap below that of unimodal training "
            "(DMC < 1)", n, "1 - DMC(ReconBoost)", list(1 - d[d.method == r].sort_values("seed").dmc), protocol=lp,
            unit="ratio")
        ledger.check_supported(
            papers.comparison("reconboost-table11", "Concat Fusion", "Ours", "DMC", fam), f"{n}-rb-dmc-below-concat@{p}",
            "ReconBoost", "Table 11", "ReconBoost has a lower DMC than concat", n,
            "DMC(concat) - DMC(ReconBoost)", paired_diffs(d, {"method": "concat"}, {"method": r}, "dmc"), protocol=lp,
            unit="ratio")
        rr = ret[(ret.dataset == n) & (ret.protocol == lp)]
        ledger.check_supported(
            papers.comparison("reconboost-table7", "Ours", "Concat Fusion", "MAP", fam),
            f"{n}-rb-retrieval-vs-concat@{p}", "ReconBoost", "Tables 3 / 7",
            "ReconBoost's latent features retrieve better than concat's (overall mAP)", n,
            "mAP(ReconBoost) - mAP(concat)", paired_diffs(rr, {"method": r}, {"method": "concat"}, "overall"),
            protocol=lp)
        ledger.check_supported(
            papers.comparison("reconboost-table7", "Ours", "Concat Fusion", "Visual MAP", fam),
            f"{n}-rb-weak-retrieval-vs-concat@{p}", "ReconBoost", "Tables 3 / 7", f"ReconBoost's weak-modality ({w}) "
            "features retrieve better than concat's", n, f"mAP(ReconBoost) - mAP(concat), {w}",
            paired_diffs(rr, {"method": r}, {"method": "concat"}, w), protocol=lp)
        c = cl[(cl.dataset == n) & (cl.protocol == lp)]
        ledger.check_supported(
            papers.in_figure("reconboost", "Fig. 4", ("CREMA-D",), fam, "t-SNE pictures only, no numbers printed"),
            f"{n}-rb-weak-clusters-vs-concat@{p}", "ReconBoost", "Figs. 4 / 12", f"ReconBoost's weak-modality ({w}) "
            "features cluster by class better than concat's (5-NN accuracy)", n, f"knn(ReconBoost) - knn(concat), {w}",
            paired_diffs(c, {"method": r, "modality": w}, {"method": "concat", "modality": w}, "knn_acc"), protocol=lp)


# --- chapter 42: robustness ------------------------------------------------------------------
def robustness(s: Studies, fn, dataset: str = "avmnist") -> pd.DataFrame:
    """Accuracy under noise (fn: mmlab.analysis.noise_rows) of the Tables 8-10 rows, per
    protocol; the reference form is named "ReconBoost", unimodal runs "<modality> alone"."""
    from mmlab.configs.reconboost import RB_NOISE_CASES, RB_NOISE_METHODS
    from mmlab.studies import per_model
    out = []
    for p in s.protocols:
        g = per_model(s.runs[dataset, p][1], fn, [*RB_NOISE_METHODS, s.ref[dataset, p]], cases=RB_NOISE_CASES,
                      variances=RB_NOISE_VARIANCES)
        g["method"] = g.method.where(g.method != "unimodal", g.modalities + " alone").replace(
            {s.ref[dataset, p]: "ReconBoost"})
        out.append(g.assign(protocol=s.label[p]))
    rob = pd.concat(out, ignore_index=True)
    rob["column"] = "σ²=" + rob.variance.astype(str)
    return rob


def robustness_table(rob: pd.DataFrame) -> pd.DataFrame:
    return rob.pivot_table(index=["protocol", "case", "method"], columns="variance", values="acc", aggfunc=pm,
                           sort=False).add_prefix("σ² = ")


def paper_robustness(s: Studies, rob: pd.DataFrame, dataset: str = "avmnist") -> Dict[str, pd.DataFrame]:
    """ReconBoost Tables 8-10 (reported) vs ours, by title."""
    cols = {f"σ²={v}": f"σ²={v}" for v in RB_NOISE_VARIANCES}
    out = {}
    for case, tid in RB_NOISE_TABLES.items():
        tables = []
        for p in s.protocols:
            d = rob[rob.protocol == s.label[p]]
            d = d[d.case == case] if case != "both" else pd.concat([d[d.case == "both"], d[d.method.str.endswith("alone")]])
            o = pd.DataFrame({"method": d.method, "column": d.column, "seed": d.seed, "value": d.acc})
            mp = papers.mapping_for(tid, {**RB_NOISE_NAMES, **RB_NOISE_ALONE[case]}, cols)
            tables.append(papers.paper_vs_ours(o, tid, mp, our_dataset=f"{dataset}, {s.label[p]}"))
        out[f"**ReconBoost {papers.table_info(tid)['table']}: 50% of {case} corrupted**"] = papers.collapse(*tables)
    return out


def robustness_claims(ledger, s: Studies, rob: pd.DataFrame, dataset: str = "avmnist") -> None:
    """Tables 8-10 claims: with noise, ReconBoost above concat and UMT (mean over σ² > 0)."""
    noisy = rob[rob.variance > 0].groupby(["protocol", "case", "method", "seed"], as_index=False).acc.mean()
    noisy_cols = [f"σ²={v}" for v in RB_NOISE_VARIANCES if v > 0]
    for p in s.protocols:
        for case, tid in RB_NOISE_TABLES.items():
            d = noisy[(noisy.case == case) & (noisy.protocol == s.label[p])]
            for b, pb in (("concat", "Concat Fusion"), ("UMT", "UMT")):
                ledger.check_supported(
                    papers.comparison(tid, "Ours", pb, noisy_cols, FAMILY[dataset]),
                    f"{dataset}-rb-noise-{case}-vs-{b}@{p}", "ReconBoost", "Tables 8-10",
                    f"With 50% of {RB_NOISE_WHAT[case]} noisy, ReconBoost is more accurate than {b}", dataset,
                    f"mean over σ² in (0.1, 0.3, 0.5, 1) of acc(ReconBoost) - acc({b})",
                    paired_diffs(d, {"method": "ReconBoost"}, {"method": b}, "acc"), protocol=s.label[p])


# --- chapter 43: ablations -------------------------------------------------------------------
def ablation_overview(s: Studies, abl: Dict[tuple, tuple]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": n, "protocol": s.label[p], "reference (chosen on val in ch. 40)": s.ref[n, p],
                          "variants": abl[n, p][0].method.nunique() - 1, "runs": len(abl[n, p][1])}
                         for n, p in abl]).set_index(["dataset", "protocol"])


def ablation_fused(abl: Dict[tuple, tuple]) -> Dict[tuple, pd.DataFrame]:
    """One row per (variant, seed) of each ablation study."""
    return {k: fused_rows(frame) for k, (frame, _) in abl.items()}


def sweeps(s: Studies, fused: Dict[tuple, pd.DataFrame]) -> pd.DataFrame:
    """The lambda and alpha sweeps (Fig. 7 / Table 16): knob, value, dataset, protocol, fused_acc."""
    from mmlab.configs.reconboost import RB_KNOBS
    sw = pd.concat([d[d.method.str.startswith(("lam=", "alpha="))].assign(dataset=n, protocol=s.label[p])
                    for (n, p), d in fused.items()])
    sw["knob"] = sw.method.str.split("=").str[0].map(RB_KNOBS)
    sw["value"] = sw.method.str.split("=").str[1]
    return sw


def sweeps_table(sw: pd.DataFrame) -> pd.DataFrame:
    return sw.pivot_table(index=["knob", "value"], columns=["dataset", "protocol"], values="fused_acc", aggfunc=pm,
                          sort=False)


def paper_lambda(s: Studies, fused: Dict[tuple, pd.DataFrame]):
    """ReconBoost Table 16 (reported) vs ours (avmnist), or None."""
    if "avmnist" not in s.datasets:
        return None
    tables = []
    for p in s.protocols:
        d = fused["avmnist", p]
        d = d[d.method.str.startswith("lam=")]
        o = pd.DataFrame({"method": d.method, "column": "Acc", "seed": d.seed, "value": d.fused_acc})
        tables.append(papers.paper_vs_ours(o, "reconboost-table16", papers.mapping_for(
            "reconboost-table16", RB_T16_NAMES, {"Acc": "Acc"}, ("AVE", "CREMA-D")), our_dataset=f"avmnist, {s.label[p]}"))
    return papers.collapse(*tables)


def grs_order(s: Studies, abl: Dict[tuple, tuple], fused: Dict[tuple, pd.DataFrame]) -> Dict[str, pd.DataFrame]:
    """Fig. 8 / Table 13 rows (GRS on / off, selection order): overall and per-learner
    accuracy, one table per dataset, by title."""
    from mmlab.configs.reconboost import RB_GRS_ROWS
    tables = {}
    for (n, p), (frame, _) in abl.items():
        t = agg_pm(frame[frame.method.isin(RB_GRS_ROWS)], ["method", "modality"], "per_modality_acc",
                   unstack="modality")
        t.insert(0, "overall", agg_pm(fused[n, p][fused[n, p].method.isin(RB_GRS_ROWS)], "method", "fused_acc"))
        tables[n, s.label[p]] = t
    return {f"**{n}** (test accuracy %; per-modality = each learner's own prediction)":
            pd.concat({k[1]: v for k, v in tables.items() if k[0] == n}, axis=1) for n in s.datasets}


def paper_order(s: Studies, abl: Dict[tuple, tuple]):
    """ReconBoost Table 13 (AVE, reported) vs ours (avmnist), or None."""
    if "avmnist" not in s.datasets:
        return None
    tables = []
    for p in s.protocols:
        d = abl["avmnist", p][0]
        d = d[d.method.isin(["fixed (ours)", "S1 (lowest loss)", "S2 (highest loss)"])]
        o = pd.concat([long_frame(d, "fused_acc", "Overall Acc", dedupe=True),
                       long_frame(d, "per_modality_acc", RB_T13_COLUMNS)])
        tables.append(papers.paper_vs_ours(o, "reconboost-table13", papers.mapping_for(
            "reconboost-table13", RB_T13_NAMES, {c: c for c in ("Overall Acc", "Audio Acc", "Visual Acc")}),
            our_dataset=f"avmnist, {s.label[p]}"))
    return papers.collapse(*tables)


def ablation_claims(ledger, s: Studies, fused: Dict[tuple, pd.DataFrame]) -> None:
    """Fig. 7-8, Tables 13 / 16 claims, per dataset and protocol."""
    for (n, p), d in fused.items():
        fam, lp = FAMILY[n], s.label[p]
        lam_support = (papers.comparison("reconboost-table16", "Ours (lambda=1/3)", "Ours (lambda=1)", "Acc", fam)
                       if n == "avmnist" else papers.in_figure("reconboost", "Fig. 7", ("CREMA-D", "MOSEI"), fam))
        ledger.check_supported(
            lam_support, f"{n}-rb-lambda-third-vs-1@{p}", "ReconBoost", "Fig. 7 / Table 16",
            "λ = 1/3 beats λ = 1 (too much disagreement hurts)", n, "acc(λ=1/3) - acc(λ=1)",
            paired_diffs(d, {"method": "lam=1/3"}, {"method": "lam=1"}, "fused_acc"), protocol=lp)
        ledger.check_supported(
            papers.in_figure("reconboost", "Fig. 7", ("CREMA-D", "MOSEI"), fam, "α plotted, no numbers printed"),
            f"{n}-rb-mcr-helps@{p}", "ReconBoost", "Fig. 7 / Table 16", "Memory consolidation (α = 0.1) improves on "
            "no MCR (α = 0)", n, "acc(α=0.1) - acc(α=0)",
            paired_diffs(d, {"method": "alpha=0.1"}, {"method": "alpha=0.0"}, "fused_acc"), protocol=lp)
        ledger.check_supported(
            papers.in_figure("reconboost", "Fig. 8", ("CREMA-D", "AVE"), fam), f"{n}-rb-grs-helps@{p}", "ReconBoost",
            "Fig. 8", "Global rectification improves ReconBoost", n, "acc(with GRS) - acc(w/o GRS)",
            paired_diffs(d, {"method": "with GRS"}, {"method": "w/o GRS"}, "fused_acc"), protocol=lp)
        for sel, ps in (("S1 (lowest loss)", "S_1"), ("S2 (highest loss)", "S_2")):
            ledger.check_supported(
                papers.comparison("reconboost-table13", "Ours", ps, "Overall Acc", fam),
                f"{n}-rb-fixed-vs-{sel[:2].lower()}@{p}", "ReconBoost", "Table 13",
                f"Fixed alternation beats {sel} selection", n, f"acc(fixed) - acc({sel[:2]})",
                paired_diffs(d, {"method": "fixed (ours)"}, {"method": sel}, "fused_acc"), protocol=lp)
