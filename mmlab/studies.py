"""Multi-seed studies built from cached runs: the imbalance table of every benchmark.

`imbalance_study` trains, per seed, each modality alone (unimodal) and each joint
method, and returns one row per (method, seed, modality) with the joint model's
per-modality and joint-only accuracy, the linear probe of its encoder, the same probe on
a random encoder, and the unimodal accuracy of that modality for the same seed.

Paper-independent: `variant_study` / `protocol_study` train named variants under a
mmlab.configs.Protocol (a paper's builders, e.g. mmlab.configs.reconboost.study, sit on them);
`pm` / `agg_pm` / `fused_rows` / `alone_label` are the wrangling the chapters share.
"""
from __future__ import annotations

from functools import partial
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import pandas as pd

from mmlab.data import load_dataset
from mmlab.runner import RunConfig, run_many


def _with_recipe(recipe, method: str, common: dict, options: dict) -> Tuple[dict, dict]:
    """(RunConfig kwargs, method options) of one run: the protocol's recipe for `method`
    (optimizer settings, method options) under the run's own options, which win."""
    if recipe is None:
        return common, options
    r = recipe(method)
    return {**common, **r.run_kwargs()}, {**r.method_options, **options}


def study_configs(dataset: str, methods: Iterable[str], seeds: Iterable[int], recipe=None, **common) -> list:
    """RunConfigs of each modality alone and each method, per seed; `recipe(method)` (a
    mmlab.configs.Recipe) sets each method's optimizer and extra options when given."""
    modalities = load_dataset(dataset, **common.get("dataset_options", {})).info.modality_names
    base = common.pop("method_options", {})
    cfgs = []
    for seed in seeds:
        for m in modalities:
            kw, mo = _with_recipe(recipe, "unimodal", common, {**base, "modality": m})
            cfgs.append(RunConfig(dataset=dataset, method="unimodal", seed=seed, method_options=mo, **kw))
        for method in methods:
            kw, mo = _with_recipe(recipe, method, common, dict(base))
            cfgs.append(RunConfig(dataset=dataset, method=method, seed=seed, method_options=mo, **kw))
    return cfgs


def study_results(dataset: str, methods=("concat",), seeds=(0, 1, 2), n_jobs: int = 1, **common) -> list:
    """mmlab Results of every unimodal and joint run of the study (cached)."""
    return run_many(study_configs(dataset, methods, seeds, **common), n_jobs=n_jobs)


def imbalance_frame(results, labels=None) -> pd.DataFrame:
    """One row per (method, seed, modality), joined with the same seed's unimodal run;
    `labels` (one per result) names the method column, e.g. variant labels."""
    unis = [r for r in results if r.config["method"] == "unimodal"]
    uni = {(r.config["dataset"], r.config["seed"], r.config["method_options"]["modality"]): r for r in unis}
    if len(uni) != len(unis):
        raise ValueError("imbalance_frame got several unimodal runs for one (dataset, seed, modality): "
                         "pass the results of one study (one set of sizes and options) at a time")
    rows = []
    for i, r in enumerate(results):
        t, seed, ds = r.metrics["test"], r.config["seed"], r.config["dataset"]
        for m, acc in t["per_modality"].items():
            u = uni[(ds, seed, m)]
            rows.append({"dataset": ds, "method": labels[i] if labels else r.config["method"], "seed": seed, "modality": m,
                         "fused_acc": t["acc"], "per_modality_acc": acc,
                         "joint_only_acc": t.get("joint_only", {}).get(m, acc),
                         "probe": r.probe.get(m, np.nan), "probe_random": r.probe_random.get(m, np.nan),
                         "unimodal_acc": u.metrics["test"]["acc"], "unimodal_probe": u.probe.get(m, np.nan),
                         "wall_s": r.wall_s, "config_hash": r.config_hash})
    return pd.DataFrame(rows)


def imbalance_study(dataset: str, methods=("concat",), seeds=(0, 1, 2), n_jobs: int = 1,
                    **common) -> pd.DataFrame:
    """One row per (method, seed, modality); `common` goes to every RunConfig."""
    return imbalance_frame(study_results(dataset, methods, seeds, n_jobs=n_jobs, **common))


def mir_dmc_frame(df: pd.DataFrame, method: str = "concat", value: str = "probe",
                  uni_value: str = "unimodal_probe") -> pd.DataFrame:
    """MIR (uni and joint) and DMC per seed for one joint method (ReconBoost Table 11):
    accuracies are linear probes of the frozen encoders by default."""
    from mmlab.analysis import mir_table
    rows = []
    for (ds, seed), g in df[df["method"] == method].groupby(["dataset", "seed"]):
        uni = dict(zip(g["modality"], g[uni_value]))
        mul = dict(zip(g["modality"], g[value]))
        rows.append({"dataset": ds, "method": method, "seed": seed, **mir_table(uni, mul)})
    return pd.DataFrame(rows)


def summarize(df: pd.DataFrame, cols=("fused_acc", "per_modality_acc", "joint_only_acc", "probe",
                                       "probe_random", "unimodal_acc")) -> pd.DataFrame:
    """Mean and std over seeds per (dataset, method, modality)."""
    g = df.groupby(["dataset", "method", "modality"], sort=False)[list(cols)]
    return g.agg(["mean", "std"])


def variant_configs(dataset: str, variants: Dict[str, Tuple[str, dict]], seeds: Iterable[int],
                    with_unimodal: bool = True, recipe=None, **common) -> List[Tuple[str, RunConfig]]:
    """(label, RunConfig) per seed for each named variant {label: (method, options)} or
    {label: (method, options, run options)} (e.g. {"missing_rate": 0.3}), plus each modality
    alone (label "unimodal") when with_unimodal; `recipe` as in study_configs."""
    pairs = []
    if with_unimodal:
        pairs += [("unimodal", c) for c in study_configs(dataset, (), seeds, recipe, **dict(common))]
    base_opts = common.pop("method_options", {})
    for seed in seeds:
        for label, (method, opts, *run_opts) in variants.items():
            kw, mo = _with_recipe(recipe, method, common, {**base_opts, **opts})
            kw = {**kw, **(run_opts[0] if run_opts else {})}
            pairs.append((label, RunConfig(dataset=dataset, method=method, seed=seed, method_options=mo, **kw)))
    return pairs


def variant_study(dataset: str, variants: Dict[str, Tuple[str, dict]], seeds=(0, 1, 2), n_jobs: int = 1,
                  with_unimodal: bool = True, recipe=None, **common):
    """Train every variant (cached) and return (imbalance frame with method = variant
    label, [(label, RunConfig, Result)])."""
    pairs = variant_configs(dataset, variants, seeds, with_unimodal, recipe, **common)
    results = run_many([c for _, c in pairs], n_jobs=n_jobs)
    runs = [(label, c, r) for (label, c), r in zip(pairs, results)]
    if not with_unimodal:
        return None, runs
    # labels by position: two labels may share one config (e.g. "with GRS" and "fixed (ours)")
    return imbalance_frame(results, [label for label, _, _ in runs]), runs


def fused_by_seed(frame: pd.DataFrame, label: str, value: str = "fused_acc") -> pd.Series:
    """One run-level value (fused test accuracy by default) of the runs labelled `label`, by seed
    (the per-seed series the claims pair up)."""
    return fused_rows(frame[frame.method == label]).set_index("seed")[value]


def own_by_seed(frame: pd.DataFrame, label: str, modality: str) -> pd.Series:
    """A modality's own test accuracy inside the runs labelled `label`, by seed."""
    d = frame[(frame.method == label) & (frame.modality == modality)]
    return d.set_index("seed").per_modality_acc


def per_model(runs, fn, labels=None, **params) -> pd.DataFrame:
    """Rows of fn(method, model, splits, **params) -> dict or list of dicts, for each trained
    run (label, cfg, result) whose label is in `labels` (default all), with label and seed.
    Cached per run by mmlab.runner.analysis (fn: a module-level mmlab function)."""
    from mmlab.runner import analysis
    rows = []
    for label, cfg, _ in runs:
        if labels is not None and label not in labels:
            continue
        out = analysis(cfg, fn, **params)
        for row in (out if isinstance(out, list) else [out]):
            rows.append({"dataset": cfg.dataset, "method": label, "seed": cfg.seed, **row})
    return pd.DataFrame(rows)


def standings(df: pd.DataFrame, protocol: str, source: str, metric: str = "test accuracy") -> list:
    """Rows for Ledger.add_standings (the intro's "where each method stands") from an imbalance /
    variant frame: per dataset and method its fused test accuracy over seeds; each modality
    trained alone as "<modality> alone"."""
    uni = df[df.method == "unimodal"].assign(method=lambda d: d.modality + " alone", acc=lambda d: d.unimodal_acc)
    joint = fused_rows(df).assign(acc=lambda d: d.fused_acc)
    both = pd.concat([uni, joint])
    return [{"method": m, "dataset": n, "protocol": protocol, "metric": metric, "mean": float(g.acc.mean()),
             "std": float(g.acc.std()) if len(g) > 1 else float("nan"), "n": int(len(g)), "source": source}
            for (n, m), g in both.groupby(["dataset", "method"], sort=False)]


def stopped_runs(runs) -> pd.DataFrame:
    """The runs of a study that a non-finite loss stopped early (nonfinite="stop"): label,
    seed, the pass where the loss diverged and the validation-selected pass reported."""
    rows = [{"method": label, "seed": cfg.seed, "diverged in pass": r.stopped["epoch"] + 1,
             "of passes": cfg.epochs, "reported pass (best on val)": r.best_epoch + 1}
            for label, cfg, r in runs if getattr(r, "stopped", None)]
    return pd.DataFrame(rows, columns=["method", "seed", "diverged in pass", "of passes",
                                       "reported pass (best on val)"])


def best_on_val(runs, labels) -> str:
    """The label among `labels` with the highest mean VALIDATION accuracy over seeds (the
    book's way to pick one variant for later tables; test accuracy never chooses)."""
    score = {l: np.mean([r.metrics["val"]["acc"] for lab, _, r in runs if lab == l]) for l in labels}
    return max(labels, key=score.get)


def long_frame(df: pd.DataFrame, value: str, column=None, dedupe: bool = False) -> pd.DataFrame:
    """(method, column, seed, value) rows for mmlab.papers.paper_vs_ours; `column` is the
    paper column: None = the row's modality, a str = that constant, a dict = modality -> name,
    a Series = per row. dedupe keeps one row per (method, seed) for run-level values such as
    fused accuracy."""
    if dedupe:
        df = df.drop_duplicates(["method", "seed"])
    if column is None:
        col = df.modality.values
    elif isinstance(column, str):
        col = [column] * len(df)
    elif isinstance(column, dict):
        col = df.modality.map(column).values
    else:
        col = pd.Series(column).loc[df.index].values
    return pd.DataFrame({"method": df.method.values, "column": col,
                         "seed": df.seed.values, "value": df[value].values})


def protocol_study(protocol, dataset: str, profile: str, variants, seeds=None, n_jobs: int = 1,
                   device: str = "auto", with_unimodal: bool = True):
    """variant_study with a mmlab.configs.Protocol's sizes (its spec of `dataset` at `profile`)
    and its per-method recipes; seeds default to the profile's."""
    sz = protocol.specs[dataset].sizes(profile)
    return variant_study(dataset, variants, seeds or sz.seeds, n_jobs=n_jobs, with_unimodal=with_unimodal,
                         recipe=partial(protocol.recipe, dataset), **sz.run_kwargs(device))


def pm(s: pd.Series, scale: float = 100.0, digits: int = 1) -> str:
    """'mean ± std' of a series over seeds (percent by default): the aggregation of the
    book's tables, e.g. `groupby(...).acc.agg(pm)` or `agg(pm, scale=1, digits=2)`."""
    return fmt_pm(s.mean(), s.std(), scale, digits)


def signed_pm(s: pd.Series) -> str:
    """'+mean ± std' of a series already in points (e.g. accuracy gains)."""
    return f"{s.mean():+.1f} ± {s.std():.1f}"


def agg_pm(df: pd.DataFrame, by, value: str, unstack=None) -> pd.DataFrame:
    """mean ± std over seeds of `value` per `by` group (first-seen order); `unstack` moves
    those index levels to the columns."""
    out = df.groupby(by, sort=False)[value].agg(pm)
    return out.unstack(unstack) if unstack is not None else out


def alone_label(df: pd.DataFrame, name: str = "alone") -> pd.DataFrame:
    """The frame with the unimodal runs' method renamed `name` (for figures)."""
    return df.assign(method=df.method.where(df.method != "unimodal", name))


def with_random_probe(df: pd.DataFrame) -> pd.DataFrame:
    """alone_label(df) plus, per alone row, a "random" row whose probe is the random encoder's."""
    d = alone_label(df)
    alone = d[d.method == "alone"]
    return pd.concat([d, alone.assign(method="random", probe=alone.probe_random)])


def fused_rows(df: pd.DataFrame, joint_only: bool = True) -> pd.DataFrame:
    """One row per (method, seed) of an imbalance frame (run-level values such as fused_acc),
    without the unimodal runs when joint_only."""
    if joint_only:
        df = df[df.method != "unimodal"]
    return df.drop_duplicates(["method", "seed"])


# --- calibration of the stand-ins (chapter 00; `python -m mmlab.studies calibrate`) ----------
# The papers' regime, the stand-ins' calibration target: every modality alone between ~45 and
# ~85 %, concat at most ~90 %, an imbalance-immune reference (UME: unimodal models trained
# and selected separately, then ensembled) at least 4 points above concat, while the
# imbalance still shows (the weak modality's probe and joint-only accuracy under concat
# below its unimodal ones). Fractions of 1.
REGIME = {"alone": (0.45, 0.85), "concat_max": 0.90, "headroom": 0.04}
CRITERIA = {
    "alone in range": "every modality alone between 45 % and 85 %",
    "concat <= 90": "concat at most 90 %",
    "UME >= concat + 4": "UME at least 4 points above concat",
    "weak probe drops": "the weak modality's probe under concat below its unimodal probe",
    "weak joint-only drops": "the weak modality's joint-only accuracy under concat below alone",
    "weak is weakest": "the modality named weak a priori is the weakest alone",
}


def calibration_results(dataset: str, dataset_options=None, profile: str = "quick", seeds=None,
                        n_jobs: int = 1, device: str = "auto") -> list:
    """Unimodal runs, concat and UME with chapter 01's sizes (mmlab.configs.imbalance.IMBALANCE) for
    one construction (dataset_options override the spec's); shared with chapters 00/01."""
    from mmlab.configs.imbalance import IMBALANCE
    sz = IMBALANCE[dataset].sizes(profile)
    kw = sz.run_kwargs(device)
    kw["dataset_options"] = {**kw["dataset_options"], **(dataset_options or {})}
    return study_results(dataset, ("concat", "ume"), seeds or sz.seeds, n_jobs=n_jobs, **kw)


def calibration_summary(results, weak: str) -> dict:
    """Measured regime of one construction (means over seeds, fractions) and which of
    CRITERIA it meets; `weak` is the modality named weak a priori."""
    df = imbalance_frame(results)
    uni = df[df.method == "unimodal"].groupby("modality").unimodal_acc.mean()
    fused = df[df.method != "unimodal"].drop_duplicates(["method", "seed"]).groupby("method").fused_acc.mean()
    cw = df[(df.method == "concat") & (df.modality == weak)]
    out = {f"{m} alone": float(a) for m, a in uni.items()}
    out.update({"concat": float(fused["concat"]), "UME": float(fused["ume"]),
                "headroom": float(fused["ume"] - fused["concat"]),
                "weak probe drop": float((cw.unimodal_probe - cw.probe).mean()),
                "weak joint-only drop": float((cw.unimodal_acc - cw.joint_only_acc).mean()),
                "seeds": int(df.seed.nunique())})
    lo, hi = REGIME["alone"]
    met = {"alone in range": bool(((uni >= lo) & (uni <= hi)).all()),
           "concat <= 90": out["concat"] <= REGIME["concat_max"],
           "UME >= concat + 4": out["headroom"] >= REGIME["headroom"],
           "weak probe drops": out["weak probe drop"] > 0,
           "weak joint-only drops": out["weak joint-only drop"] > 0,
           "weak is weakest": uni.idxmin() == weak}
    return {**out, "criteria met": int(sum(met.values())), **met}


def calibrate(dataset: str, candidates: Dict[str, dict], profile: str = "quick", seeds=None,
              n_jobs: int = 1, device: str = "auto") -> pd.DataFrame:
    """One row per candidate construction {label: dataset options}: its measured regime,
    each criterion met or not, and `chosen` for the one the stated rule picks: the most
    criteria met, then the largest UME - concat headroom (the point of calibrating)."""
    from mmlab.configs.imbalance import IMBALANCE
    weak = IMBALANCE[dataset].dominated
    rows = {label: calibration_summary(calibration_results(dataset, opts, profile, seeds, n_jobs, device), weak)
            for label, opts in candidates.items()}
    t = pd.DataFrame.from_dict(rows, orient="index")
    t.index.name = "construction"
    best = max(rows, key=lambda k: (rows[k]["criteria met"], rows[k]["headroom"]))
    t["chosen"] = [k == best for k in t.index]
    return t


def calibration_display(t: pd.DataFrame, chosen: bool = True) -> pd.DataFrame:
    """The calibrate() frame for reading: accuracies in % (one decimal), the modalities alone
    in one column, a tick per criterion (and the rule's pick, unless chosen=False)."""
    alone = [c for c in t.columns if c.endswith(" alone")]
    out = pd.DataFrame(index=t.index)
    out["alone (%)"] = [" / ".join(f"{c[:-6]} {100 * r[c]:.1f}" for c in alone if r[c] == r[c])
                        for _, r in t.iterrows()]
    for c in ("concat", "UME", "headroom", "weak probe drop", "weak joint-only drop"):
        out[c + (" (points)" if c in ("headroom",) or "drop" in c else " (%)")] = (100 * t[c]).round(1)
    for c in CRITERIA:
        out[c] = t[c].map({True: "✓", False: "✗"})
    out["criteria met"] = t["criteria met"].astype(str) + f" / {len(CRITERIA)}"
    if chosen:
        out["chosen"] = t["chosen"].map({True: "◀ the rule's pick", False: ""})
    return out


def print_calibration(t: pd.DataFrame) -> None:
    with pd.option_context("display.width", 250, "display.max_columns", 40, "display.max_colwidth", 60):
        print(calibration_display(t).to_string())
    print("criteria: " + "; ".join(f"{k}: {v}" for k, v in CRITERIA.items()))
    print("rule: the construction meeting the most criteria, then the largest UME - concat headroom")


def modality_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per (method, modality), mean ± std over seeds in %: fused, per-modality, joint-only
    and alone accuracy, and the probes of this model's, the alone model's and a random encoder."""
    cols = {"fused": "fused_acc", "per-modality": "per_modality_acc", "joint-only": "joint_only_acc",
            "alone (unimodal)": "unimodal_acc", "probe (this model)": "probe",
            "probe (trained alone)": "unimodal_probe", "probe (random encoder)": "probe_random"}
    return pd.DataFrame({k: agg_pm(df, ["method", "modality"], c) for k, c in cols.items()})


def accuracy_table(df: pd.DataFrame) -> pd.Series:
    """Test accuracy, mean ± std over seeds, of each modality alone and of every other method
    (ReconBoost Tables 1-2 layout), from a variant_study / imbalance frame."""
    uni = df[df.method == "unimodal"]
    rows = {f"{m} alone": fmt_pm(g.unimodal_acc.mean(), g.unimodal_acc.std()) for m, g in uni.groupby("modality", sort=False)}
    j = df[df.method != "unimodal"].drop_duplicates(["method", "seed"])
    rows.update({m: fmt_pm(g.fused_acc.mean(), g.fused_acc.std()) for m, g in j.groupby("method", sort=False)})
    return pd.Series(rows, name="test accuracy % (mean ± std)")


def fmt_pm(mean: float, std: Optional[float], scale: float = 100.0, digits: int = 1) -> str:
    """'mean ± std' in percent, as the book's tables print it ("—" when there is no value)."""
    if mean is None or np.isnan(mean):
        return "—"
    if std is None or np.isnan(std):
        return f"{mean * scale:.{digits}f}"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def _print_summary(df: pd.DataFrame) -> None:
    s = summarize(df)
    for (ds, method, mod), row in s.iterrows():
        cells = [f"{c}={fmt_pm(row[(c, 'mean')], row[(c, 'std')])}" for c in
                 ("per_modality_acc", "joint_only_acc", "probe", "probe_random", "unimodal_acc")]
        print(f"{ds:8s} {method:9s} {mod:6s} fused={fmt_pm(row[('fused_acc', 'mean')], row[('fused_acc', 'std')])} "
              + " ".join(cells))


def _calibrate_main(argv) -> None:
    """`python -m mmlab.studies calibrate --dataset avmnist [--grid | --data-opt k=v ...]`"""
    import argparse
    import ast
    import importlib
    p = argparse.ArgumentParser(prog="python -m mmlab.studies calibrate")
    p.add_argument("--dataset", required=True)
    p.add_argument("--grid", action="store_true", help="every candidate of the dataset's CALIBRATION_GRID")
    p.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--profile", default="quick")
    p.add_argument("--seeds", nargs="+", type=int)
    p.add_argument("--n-jobs", type=int, default=2)
    a = p.parse_args(argv)
    if a.grid:
        candidates = dict(importlib.import_module(f"mmlab.data.{a.dataset}").CALIBRATION_GRID)
    else:
        dopts = {k: ast.literal_eval(v) for k, v in (o.split("=", 1) for o in a.data_opt)}
        candidates = {"given" if dopts else "default": dopts}
    print_calibration(calibrate(a.dataset, candidates, a.profile, a.seeds, a.n_jobs, device="cpu"))


def main(argv=None) -> None:
    """`python -m mmlab.studies --dataset avmnist --epochs 10 --seeds 0 1 2 --n-jobs 2`, or
    `python -m mmlab.studies calibrate --dataset avmnist [--grid]`."""
    import argparse
    import ast
    import sys
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["calibrate"]:
        return _calibrate_main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m mmlab.studies")
    p.add_argument("--dataset", required=True)
    p.add_argument("--methods", nargs="+", default=["concat"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n-jobs", type=int, default=1)
    p.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--csv", help="also write the per-seed rows here")
    a = p.parse_args(argv)
    dopts = {k: ast.literal_eval(v) for k, v in (o.split("=", 1) for o in a.data_opt)}
    df = imbalance_study(a.dataset, a.methods, a.seeds, n_jobs=a.n_jobs, epochs=a.epochs,
                         batch_size=a.batch_size, lr=a.lr, device="cpu", dataset_options=dopts)
    if a.csv:
        df.to_csv(a.csv, index=False)
    _print_summary(df)


def history_frame(results, labels=None) -> pd.DataFrame:
    """Per-epoch validation accuracy of each modality, long format
    (dataset, method, seed, epoch, modality, val_acc), from mmlab Results; `labels`
    (one per result) replaces the method name, e.g. variant labels."""
    rows = []
    for i, r in enumerate(results):
        c = dict(r.config, method=labels[i] if labels is not None else r.config["method"])
        for h in r.history:
            for m, acc in h["val"].get("per_modality", {}).items():
                rows.append({"dataset": c["dataset"], "method": c["method"], "seed": c["seed"],
                             "epoch": h["epoch"] + 1, "modality": m, "val_acc": acc})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    main()
