"""Multi-seed studies built from cached runs: the imbalance table of every benchmark.

`imbalance_study` trains, per seed, each modality alone (unimodal) and each joint
method, and returns one row per (method, seed, modality) with the joint model's
per-modality and joint-only accuracy, the linear probe of its encoder, the same probe on
a random encoder, and the unimodal accuracy of that modality for the same seed.
"""
from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np
import pandas as pd

from mmlab.data import load_dataset
from mmlab.runner import RunConfig, run_many


def study_configs(dataset: str, methods: Iterable[str], seeds: Iterable[int], **common) -> list:
    modalities = load_dataset(dataset, **common.get("dataset_options", {})).info.modality_names
    cfgs = []
    for seed in seeds:
        for m in modalities:
            mo = {**common.get("method_options", {}), "modality": m}
            cfgs.append(RunConfig(dataset=dataset, method="unimodal", seed=seed,
                                  **{**common, "method_options": mo}))
        for method in methods:
            cfgs.append(RunConfig(dataset=dataset, method=method, seed=seed, **common))
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
                    with_unimodal: bool = True, **common) -> List[Tuple[str, RunConfig]]:
    """(label, RunConfig) per seed for each named variant {label: (method, options)}, plus
    each modality alone (label "unimodal") when with_unimodal."""
    pairs = []
    if with_unimodal:
        pairs += [("unimodal", c) for c in study_configs(dataset, (), seeds, **common)]
    base_opts = common.pop("method_options", {})
    for seed in seeds:
        for label, (method, opts) in variants.items():
            pairs.append((label, RunConfig(dataset=dataset, method=method, seed=seed,
                                           method_options={**base_opts, **opts}, **common)))
    return pairs


def variant_study(dataset: str, variants: Dict[str, Tuple[str, dict]], seeds=(0, 1, 2), n_jobs: int = 1,
                  with_unimodal: bool = True, **common):
    """Train every variant (cached) and return (imbalance frame with method = variant
    label, [(label, RunConfig, Result)])."""
    pairs = variant_configs(dataset, variants, seeds, with_unimodal, **common)
    results = run_many([c for _, c in pairs], n_jobs=n_jobs)
    runs = [(label, c, r) for (label, c), r in zip(pairs, results)]
    if not with_unimodal:
        return None, runs
    # labels by position: two labels may share one config (e.g. "with GRS" and "fixed (ours)")
    return imbalance_frame(results, [label for label, _, _ in runs]), runs


def per_model(runs, fn, labels=None) -> pd.DataFrame:
    """Rows of fn(method, model, splits) -> dict or list of dicts, for each trained run
    (label, cfg, result) whose label is in `labels` (default all), with label and seed."""
    from mmlab.runner import trained
    rows = []
    for label, cfg, _ in runs:
        if labels is not None and label not in labels:
            continue
        out = fn(*trained(cfg))
        for row in (out if isinstance(out, list) else [out]):
            rows.append({"dataset": cfg.dataset, "method": label, "seed": cfg.seed, **row})
    return pd.DataFrame(rows)


def best_on_val(runs, labels) -> str:
    """The label among `labels` with the highest mean VALIDATION accuracy over seeds (the
    book's way to pick one variant for later tables; test accuracy never chooses)."""
    score = {l: np.mean([r.metrics["val"]["acc"] for lab, _, r in runs if lab == l]) for l in labels}
    return max(labels, key=score.get)


def long_frame(df: pd.DataFrame, value: str, column=lambda r: r.modality, dedupe: bool = False) -> pd.DataFrame:
    """(method, column, seed, value) rows for mmlab.papers.paper_vs_ours; dedupe keeps one row
    per (method, seed) for run-level values such as fused accuracy."""
    if dedupe:
        df = df.drop_duplicates(["method", "seed"])
    return pd.DataFrame({"method": df.method.values, "column": [column(r) for r in df.itertuples()],
                         "seed": df.seed.values, "value": df[value].values})


def reconboost_study(dataset: str, profile: str, variants=None, seeds=None, n_jobs: int = 1,
                     device: str = "auto", with_unimodal: bool = True):
    """variant_study with the ReconBoost chapters' sizes (mmlab.configs.RECONBOOST); the
    default variants are the Table 1 / 2 rows (RB_MAIN)."""
    from mmlab.configs import RB_MAIN, RECONBOOST
    sz = RECONBOOST[dataset].sizes(profile)
    return variant_study(dataset, variants or RB_MAIN, seeds or sz.seeds, n_jobs=n_jobs,
                         with_unimodal=with_unimodal, **sz.run_kwargs(device))


def fmt_pm(mean: float, std: Optional[float], scale: float = 100.0, digits: int = 1) -> str:
    """'mean ± std' in percent, as the book's tables print it."""
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


def main(argv=None) -> None:
    """`python -m mmlab.studies --dataset avmnist --epochs 10 --seeds 0 1 2 --n-jobs 2`"""
    import argparse
    import ast
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


if __name__ == "__main__":
    main()


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
