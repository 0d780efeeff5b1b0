"""MIE chapters 20-21: the paper's tables next to ours, and its claims as checks.

Each function builds one artifact from the studies of mmlab.configs.mie ({(dataset, protocol):
(imbalance frame, runs)}); the notebooks call one function per artifact (figures:
mmlab.papers.mie_figures). Reported numbers come from mmlab/papers/tables/mie-*.yaml.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
import pandas as pd

from mmlab import papers
from mmlab.configs.mie import (FAMILY, MIE_ABLATION, MIE_ABLATION_ROWS, MIE_COLUMNS, MIE_DIRECTIONS, MIE_LAYER_NAMES,
                               MIE_MAIN, MIE_NOT_RUN, MIE_PAPER_NAMES, MIE_PROTOCOLS, MIE_SCOPE_PAPER, MIE_SCOPES,
                               MIE_SPECTRA_MODELS, MIE_SPECTRA_SHOWN, MIE_T6_COLUMNS, MIE_T6_NAMES, MIE_TABLE_OF, MIE_TABLES)
from mmlab.studies import agg_pm, fused_rows, long_frame, per_model, pm, standings
from mmlab.studies import fused_by_seed as _fused, own_by_seed as _own

PAPER = "MIE"
LABEL = {p: pr.label for p, pr in MIE_PROTOCOLS.items()}
WEIGHT = "MIE (Weight)"
METRICS = {"acc": "accuracy", "map": "mAP", "f1": "macro-F1"}


def overview(studies: Dict[tuple, tuple], profile: str) -> pd.DataFrame:
    """Per (dataset, protocol): what it stands in for, passes, seeds, runs."""
    return pd.DataFrame([{"dataset": n, "protocol": LABEL[p], "stands in for": ", ".join(MIE_TABLES[n]),
                          "passes over train": MIE_PROTOCOLS[p].specs[n].sizes(profile).epochs,
                          "seeds": frame.seed.nunique(), "runs": len(runs)}
                         for (n, p), (frame, runs) in studies.items()]).set_index(["dataset", "protocol"])


def metrics_frame(runs, labels) -> pd.DataFrame:
    """(method, seed, acc, map, f1) of the fused test prediction, for runs with those labels,
    plus "MIE (Weight)": MIE's own trained model fused by MLA's entropy weights."""
    from mmlab.methods.mie import rule_metrics
    rows = [{"method": label, "seed": cfg.seed, **{k: r.metrics["test"][k] for k in METRICS}}
            for label, cfg, r in runs if label in labels]
    d = pd.DataFrame(rows).drop_duplicates(["method", "seed"])
    if "MIE" not in labels:
        return d
    weight = per_model(runs, rule_metrics, labels=["MIE"], rule="weight").assign(method=WEIGHT)
    return pd.concat([d, weight[["method", "seed", *METRICS]]], ignore_index=True)


def record_standings(ledger, studies: Dict[tuple, tuple]) -> None:
    """Where Table 1's rows stand, per dataset and protocol (the intro's scoreboard)."""
    for (n, p), (frame, _) in studies.items():
        rows = frame[frame.method.isin(list(MIE_MAIN) + ["unimodal"])]
        ledger.add_standings(standings(rows, LABEL[p], "chapter 20, MIE Table 1 / 2 rows"))


def accuracy(studies: Dict[tuple, tuple]) -> Dict[str, pd.DataFrame]:
    """Tables 1 / 2 layout per (dataset, protocol): fused accuracy, mAP, macro-F1 and each
    modality's own accuracy inside the model, mean ± sd over seeds in %."""
    out = {}
    for (n, p), (frame, runs) in studies.items():
        mf = metrics_frame(runs, MIE_MAIN)
        t = pd.concat({v: agg_pm(mf, "method", k) for k, v in METRICS.items()}, axis=1)
        own = agg_pm(frame[frame.method.isin(MIE_MAIN)], ["method", "modality"], "per_modality_acc",
                     unstack="modality").add_prefix("own acc: ")
        t = t.join(own).reindex([*MIE_MAIN, WEIGHT]).fillna("—")
        for m, g in frame[frame.method == "unimodal"].groupby("modality", sort=False):
            t.loc[f"{m} alone", "accuracy"] = pm(g.unimodal_acc)
        out[f"**{n}, {LABEL[p]}** (test %, mean ± sd over seeds; \"own acc\" = the modality's own "
            f"prediction inside the model)"] = t.fillna("—")
    return out


def paper_accuracy(studies: Dict[tuple, tuple]) -> Dict[str, pd.DataFrame]:
    """MIE Table 1 (avmnist: CREMA-D, Kinetics-Sounds) / Table 2 (mfeat: NVGesture), reported
    vs ours under each protocol; the baselines not run here listed as reported only."""
    out = {}
    for n in dict.fromkeys(n for n, _ in studies):
        tid, tables = MIE_TABLE_OF[n], []
        cols = {"Accuracy": "acc", "MAP": "map"} if n == "avmnist" else {"Accuracy": "acc", "Mac-F1": "f1"}
        for p in [p for m, p in studies if m == n]:
            mf = metrics_frame(studies[n, p][1], MIE_MAIN)
            ours = pd.concat([pd.DataFrame({"method": mf.method, "column": c, "seed": mf.seed, "value": mf[k]})
                              for c, k in cols.items()])
            mp = papers.mapping_for(tid, MIE_PAPER_NAMES, {c: c for c in cols}, MIE_TABLES[n])
            tables.append(papers.paper_vs_ours(ours, tid, mp, our_dataset=f"{n}, {LABEL[p]}"))
        t = papers.collapse(*tables)
        rep = papers.load_table(tid)
        rep = rep[rep.method.isin(MIE_NOT_RUN) & rep.column.isin(cols)]
        for r in rep.itertuples():
            key = (r.method, r.column)
            col = f"paper: {r.dataset} (reported)"
            if col in t.columns:
                t.loc[key, col] = f"{r.value:.2f}"
                t.loc[key, [c for c in t.columns if c.startswith("ours")]] = "— (not run here)"
        out[f"**MIE {papers.table_info(tid)['table']} ({', '.join(MIE_TABLES[n])}, reported) vs ours ({n})**"] = \
            t.fillna("—")
    return out


def not_run() -> pd.DataFrame:
    """The paper's baselines this book does not run, and why."""
    return pd.DataFrame({"baseline": list(MIE_NOT_RUN), "why it is quoted as reported only": list(MIE_NOT_RUN.values())}
                        ).set_index("baseline")


def ablation(studies: Dict[tuple, tuple]) -> Dict[str, pd.DataFrame]:
    """Table 3 (Kinetics-Sounds, reported) vs ours: SAM x GM, per modality and multimodal, at
    the paper's rho and at rho 0.05, per protocol, on the audio-visual stand-in."""
    out = {}
    for (n, p), (frame, runs) in studies.items():
        if n not in MIE_COLUMNS or not set(MIE_ABLATION) <= set(frame.method):
            continue
        cols = {ours: paper for paper, ours in MIE_COLUMNS[n].items()}
        d = frame[frame.method.isin(MIE_ABLATION)]
        mf = metrics_frame(runs, MIE_ABLATION)
        ours = pd.concat([long_frame(d, "per_modality_acc", {m: f"{c} Accuracy" for m, c in cols.items()}),
                          pd.DataFrame({"method": mf.method, "column": "Multi Accuracy", "seed": mf.seed, "value": mf.acc}),
                          pd.DataFrame({"method": mf.method, "column": "Multi MAP", "seed": mf.seed, "value": mf["map"]})])
        columns = {c: c for c in ("Audio Accuracy", "Video Accuracy", "Multi Accuracy", "Multi MAP")}
        tables = []
        for rho, rows in MIE_ABLATION_ROWS.items():
            names = {f"SAM {'on' if s == 'v' else 'off'}, GM {'on' if g == 'v' else 'off'}": ours_label
                     for (s, g), ours_label in rows.items()}
            mp = papers.mapping_for("mie-table3", names, columns)
            tables.append(papers.paper_vs_ours(ours, "mie-table3", mp, our_dataset=f"{n}, {LABEL[p]}, {rho}"))
        out[f"**MIE Table 3 (Kinetics-Sounds, reported) vs ours ({n}, {LABEL[p]})**"] = papers.collapse(*tables)
    return out


def sam_noop(studies: Dict[tuple, tuple]) -> pd.DataFrame:
    """At the paper's rho, is SAM a no-op? The largest |difference| of test metrics between the
    SAM-on and SAM-off runs of each seed (0 = the same model, bit for bit)."""
    rows = []
    for (n, p), (frame, runs) in studies.items():
        if not set(MIE_ABLATION) <= set(frame.method):
            continue
        mf = metrics_frame(runs, MIE_ABLATION).set_index(["method", "seed"])
        for gm in ("off", "on"):
            on, off = mf.loc[f"SAM on (paper rho), GM {gm}"], mf.loc[f"SAM off, GM {gm}"]
            act = mf.loc[f"SAM on (rho 0.05), GM {gm}"]
            rows.append({"dataset": n, "protocol": LABEL[p], "GM": gm,
                         "max |Δ| paper rho vs SAM off (points)": 100 * float((on - off).abs().max().max()),
                         "max |Δ| rho 0.05 vs SAM off (points)": 100 * float((act - off).abs().max().max())})
    return pd.DataFrame(rows).set_index(["dataset", "protocol", "GM"]).round(2)


def accuracy_claims(ledger, studies: Dict[tuple, tuple]) -> None:
    """Tables 1 / 2: MIE above each row it is compared with (fused accuracy); Table 3: SAM and
    GM each help (at the paper's rho and at rho 0.05), per (dataset, protocol)."""
    for (n, p), (frame, runs) in studies.items():
        fam, tag, tid = FAMILY[n], f"@{p}", MIE_TABLE_OF[n]
        mf = metrics_frame(runs, MIE_MAIN).set_index(["method", "seed"]).acc
        for paper_name, ours in MIE_PAPER_NAMES.items():
            if ours in ("MIE", WEIGHT) or ours not in mf.index.get_level_values(0):
                continue
            if not (papers.load_table(tid).method == paper_name).any():
                continue
            for mie_row, mie_label in (("MIE (Average)", "MIE"), ("MIE (Weight)", WEIGHT)):
                ledger.check_supported(papers.comparison(tid, mie_row, paper_name, "Accuracy", fam),
                                       f"{n}-mie-{'weight' if mie_label == WEIGHT else 'avg'}-beats-"
                                       f"{paper_name.lower()}{tag}", PAPER, papers.table_info(tid)["table"],
                                       f"{mie_row} is more accurate than {ours}", n,
                                       f"acc({mie_label}) - acc({ours})", list(mf[mie_label] - mf[ours]),
                                       protocol=LABEL[p])
        if n not in MIE_COLUMNS or not set(MIE_ABLATION) <= set(frame.method):
            continue
        for rho, rows in MIE_ABLATION_ROWS.items():
            for key, better, worse, what in (("sam", rows["v", "v"], rows["x", "v"], "SAM"),
                                             ("gm", rows["v", "v"], rows["v", "x"], "GM"),
                                             ("both", rows["v", "v"], rows["x", "x"], "SAM and GM together")):
                pb = f"SAM {'on' if 'SAM on' in better else 'off'}, GM {'on' if 'GM on' in better else 'off'}"
                pw = f"SAM {'on' if 'SAM on' in worse else 'off'}, GM {'on' if 'GM on' in worse else 'off'}"
                ledger.check_supported(papers.comparison("mie-table3", pb, pw, "Multi Accuracy", fam),
                                       f"{n}-mie-ablation-{key}-{rho.replace(' ', '')}{tag}", PAPER, "Table 3",
                                       f"{what} improves MIE ({worse} -> {better})", n, f"acc({better}) - acc({worse})",
                                       list(_fused(frame, better) - _fused(frame, worse)), protocol=LABEL[p])


# --- Fig. 3: accuracy after each phase --------------------------------------------------------------
def phase_history(runs) -> pd.DataFrame:
    """(method, seed, phase index, trained modality, val accuracy) of runs tracked with
    track=("method",), one row per modality phase."""
    rows = []
    for label, cfg, r in runs:
        if label not in MIE_DIRECTIONS:
            continue
        k = 0
        for h in r.history:
            for ph in h.get("track", {}).get("method", {}).get("phases", []):
                k += 1
                rows.append({"method": label, "seed": cfg.seed, "phase": k, "trained": ph["phase"], "acc": ph["acc"]})
    return pd.DataFrame(rows)


def direction_claims(ledger, frame: pd.DataFrame, n: str) -> None:
    """Fig. 3: interactive GM above either one-directional form; the dominant modality's model
    modifying the other's gradients ("w/o v-GM") above the reverse ("w/o a-GM")."""
    full, wo_v, wo_a = list(MIE_DIRECTIONS)
    for key, better, worse in (("vs-wo-v", full, wo_v), ("vs-wo-a", full, wo_a), ("v-over-a", wo_v, wo_a)):
        ledger.check_supported(papers.in_figure("mie", "Fig. 3", ("Kinetics-Sounds",), FAMILY[n]),
                               f"{n}-mie-directions-{key}", PAPER, "Fig. 3", f"{better} is more accurate than {worse}",
                               n, f"acc({better}) - acc({worse}), test", list(_fused(frame, better) - _fused(frame, worse)),
                               protocol=LABEL["equal"])


# --- Fig. 4: sensitivity ---------------------------------------------------------------------------
def sensitivity_frame(runs, profile: str) -> pd.DataFrame:
    """(parameter, value, seed, acc, map) of Fig. 4's runs (tau and rho sweeps)."""
    from mmlab.configs.mie import sensitivity_points
    res = {(label, cfg.seed): r.metrics["test"] for label, cfg, r in runs}
    seeds = sorted({s for _, s in res})
    return pd.DataFrame([{"parameter": par, "value": v, "seed": s, "acc": res[label, s]["acc"], "map": res[label, s]["map"]}
                         for par, v, label in sensitivity_points(profile) for s in seeds if (label, s) in res])


def sensitivity_table(sf: pd.DataFrame) -> pd.DataFrame:
    """Fig. 4 as numbers: test accuracy and mAP per tau and per rho (mean ± sd over seeds)."""
    t = pd.concat({"accuracy": agg_pm(sf, ["parameter", "value"], "acc"), "mAP": agg_pm(sf, ["parameter", "value"], "map")},
                  axis=1)
    return t.rename(index=lambda v: f"{v:g}" if isinstance(v, float) else v)


def sensitivity_claims(ledger, sf: pd.DataFrame, n: str, tolerance: float = 0.02) -> None:
    """Fig. 4: MIE is "not sensitive" to tau / rho over a large range, read as: the spread of
    test accuracy over the grid (max - min per seed) stays below `tolerance` (2 points); the
    measure is tolerance - spread, positive when the claim holds."""
    for par in ("tau", "rho"):
        d = sf[sf.parameter == par].pivot_table(index="seed", columns="value", values="acc")
        spread = d.max(axis=1) - d.min(axis=1)
        ledger.check_supported(papers.in_figure("mie", "Fig. 4", ("Kinetics-Sounds",), FAMILY[n]),
                               f"{n}-mie-insensitive-{par}", PAPER, "Fig. 4",
                               f"MIE's accuracy varies by less than {100 * tolerance:g} points over {par} in "
                               f"[{d.columns.min():g}, {d.columns.max():g}]", n,
                               f"{100 * tolerance:g} pts - (max - min over {par} of acc), per seed",
                               list(tolerance - spread), protocol=LABEL["equal"])


# --- Table 4: scope of GM ----------------------------------------------------------------------
def scope_table(frame: pd.DataFrame, runs, n: str) -> pd.DataFrame:
    """Table 4 (Kinetics-Sounds, reported) vs ours: the layers each scope modifies here, and the
    fused accuracy and mAP."""
    from mmlab.runner import trained
    mf = metrics_frame(runs, MIE_SCOPES)
    rows = []
    for label, (method, opts, _) in MIE_SCOPES.items():
        cfg = next(c for lab, c, _ in runs if lab == label)
        method, model, _ = trained(cfg)
        layers = method.modified_layers(model)
        rep = papers.reported("mie-table4", MIE_SCOPE_PAPER[label])
        d = mf[mf.method == label]
        rows.append({"scope": label, "layers modified here": ", ".join(layers) or "none",
                     "paper: Kinetics-Sounds acc / MAP (reported)": " / ".join(f"{v:.2f}" for v in rep.value),
                     f"ours: {n} accuracy": pm(d.acc), f"ours: {n} mAP": pm(d["map"])})
    return pd.DataFrame(rows).set_index("scope")


def scope_claims(ledger, frame: pd.DataFrame, n: str) -> None:
    """Table 4: every GM scope above no GM; 30 % above the head alone and above 100 %."""
    for key, better, worse in (("head-vs-none", "classification head", "0 % (w/o GM)"),
                               ("30-vs-head", "30 %", "classification head"), ("30-vs-100", "30 %", "100 %")):
        ledger.check_supported(papers.comparison("mie-table4", MIE_SCOPE_PAPER[better], MIE_SCOPE_PAPER[worse],
                                                 "Accuracy", ("Kinetics-Sounds",)),
                               f"{n}-mie-scope-{key}", PAPER, "Table 4", f"GM over {better} beats GM over {worse}", n,
                               f"acc({better}) - acc({worse})", list(_fused(frame, better) - _fused(frame, worse)),
                               protocol=LABEL["equal"])


# --- chapter 21: landscapes, singular values, pretrained encoders --------------------------------
def sharpness_table(lf: pd.DataFrame) -> pd.DataFrame:
    """Mean loss rise over each landscape (mean ± sd over seeds), per model and modality."""
    return lf.groupby(["method", "modality"], sort=False).sharpness.agg(
        lambda s: f"{s.mean():.3f} ± {s.std(ddof=1):.3f}" if len(s) > 1 else f"{s.mean():.3f}").unstack("modality")


def landscape_claims(ledger, lf: pd.DataFrame, n: str) -> None:
    """Fig. 5: MIE's landscape is flatter than the baseline's and MLA's, per modality: relative
    sharpness difference (other - MIE) / other, paired per seed; at the paper's rho and at 0.05."""
    s = lf.set_index(["method", "modality", "seed"]).sharpness.sort_index()
    for mie_key in ("MIE", "MIE (rho 0.05)"):
        for other in ("Baseline", "MLA"):
            for m in dict.fromkeys(lf.modality):
                a, b = s[other, m], s[mie_key, m]
                ledger.check_supported(papers.in_figure("mie", "Fig. 5", ("Kinetics-Sounds",), FAMILY[n]),
                                       f"{n}-mie-flatter-{mie_key.split()[-1].strip(')').replace('.', '')}-"
                                       f"{other.lower()}-{m}", PAPER, "Fig. 5",
                                       f"{mie_key}'s {m} loss landscape is flatter than {other}'s", n,
                                       f"(sharpness({other}) - sharpness({mie_key})) / sharpness({other}), {m}",
                                       list((a - b) / a), unit="ratio", protocol=LABEL["equal"])


def spectra_table(sp: pd.DataFrame) -> pd.DataFrame:
    """Tables 5 / 7 layout: max and mean eigenvalue of Y per head layer (the paper's layer
    names), raw and normalised, per model and modality (mean over seeds), with the paper's."""
    d = sp.assign(layer=sp.layer.map(MIE_LAYER_NAMES))
    long = d.melt(["method", "modality", "layer", "seed"], ["max", "mean", "max_normalised", "mean_normalised"],
                  var_name="stat")
    t = long.groupby(["layer", "stat", "method", "modality"], sort=False).value.mean().unstack(["method", "modality"])
    t.columns = [f"ours: {MIE_SPECTRA_SHOWN.get(m, m)}, {mod}" for m, mod in t.columns]
    rep = papers.load_table("mie-table5")
    for meth in dict.fromkeys(rep.method):
        r = rep[rep.method == meth]
        vals = {(c.rsplit(" ", 1)[0], {"Max": "max", "Average": "mean"}[c.rsplit(" ", 1)[1]]): v
                for c, v in zip(r.column, r.value)}
        t[f"paper: {meth} (Kinetics-Sounds, reported)"] = [vals.get(k, np.nan) for k in t.index]
    return t.map(lambda v: "—" if pd.isna(v) else (f"{v:.4g}")).rename_axis(["layer", "statistic"])


def spectra_claims(ledger, sp: pd.DataFrame, n: str) -> None:
    """Table 5: MIE's largest eigenvalue per head layer is below MIE w/o SAM's (relative
    difference, mean over modalities, paired per seed), at the paper's rho and at 0.05."""
    s = sp.groupby(["method", "layer", "seed"])["max"].mean().sort_index()
    base = MIE_SPECTRA_MODELS["MIE (w/o SAM)"]
    for key in ("MIE", "MIE (rho 0.05)"):
        for layer, pname in MIE_LAYER_NAMES.items():
            a, b = s[base, layer], s[MIE_SPECTRA_MODELS[key], layer]
            ledger.check_supported(papers.comparison("mie-table5", "MIE (w/o SAM)", "MIE", f"{pname} Max", FAMILY[n]),
                                   f"{n}-mie-spectra-{'paper' if key == 'MIE' else 'rho005'}-{layer.split('.')[-1]}",
                                   PAPER, "Table 5", f"{key}'s largest singular value of {pname} is below MIE w/o SAM's",
                                   n, f"(max λ(w/o SAM) - max λ({key})) / max λ(w/o SAM), {pname}",
                                   list((a - b) / a), unit="ratio", protocol=LABEL["equal"])


def pretrained_table(frame: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Table 6 (Twitter2015 with CLIP, reported) vs ours (pretrained encoders on mfeat)."""
    return papers.modalities_vs_paper(frame, "mie-table6", MIE_T6_NAMES, MIE_T6_COLUMNS,
                                      f"{dataset}, pretrained encoders")


def pretrained_claims(ledger, frame: pd.DataFrame, dataset: str) -> None:
    """Table 6: with pretrained encoders MIE above MLA and above joint fine-tuning (fused)."""
    mie_, mla_, base = MIE_T6_NAMES["CLIP+MIE"], MIE_T6_NAMES["CLIP+MLA"], MIE_T6_NAMES["CLIP"]
    for key, other, pname in (("mla", mla_, "CLIP+MLA"), ("concat", base, "CLIP")):
        ledger.check_supported(papers.comparison("mie-table6", "CLIP+MIE", pname, "Multi", ("Twitter2015",)),
                               f"{dataset}-mie-pretrained-beats-{key}", PAPER, "Table 6",
                               f"With pretrained encoders MIE is more accurate than {other}", dataset,
                               f"acc(MIE) - acc({other}), pretrained encoders", list(_fused(frame, mie_) - _fused(frame, other)),
                               protocol=LABEL["equal"])


def landscape_rows(runs, models: Dict[str, str], params: dict) -> pd.DataFrame:
    """Per (model, seed, modality): the plane and its sharpness (cached per run); `method` is
    the figure's name of the model (the keys of `models`)."""
    from mmlab.analysis.landscape import modality_landscapes
    lf = per_model(runs, modality_landscapes, labels=list(dict.fromkeys(models.values())), **params)
    shown = {label: name for name, label in models.items()}
    return lf.assign(method=lf.method.map(shown))


def spectra_rows(runs) -> pd.DataFrame:
    """Per (model, seed, modality, layer): the eigenvalue summary of Y (cached per run)."""
    from mmlab.methods.mie import head_spectra
    return per_model(runs, head_spectra, labels=list(dict.fromkeys(MIE_SPECTRA_MODELS.values())))
