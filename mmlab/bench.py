"""Benchmarks (not tests): `python -m mmlab.bench trainer-overhead | epoch-time ...`.

trainer-overhead: the same model, data, optimizer and number of steps, trained by the
  mmlab Trainer (validation off, as the bare loop has none) and by a bare PyTorch loop,
  alternating runs; prints the median time ratio last: `trainer_overhead_ratio <x>`.
epoch-time: median wall seconds per pass over the training set, first pass excluded
  (so methods with stages compare fairly); prints `s_per_pass <x>`. A wrapper method that names
  its `speed_reference` (ERL-MR: the same fusion without it) is timed against it too, with its
  `speed_target` ratio (ERL-MR: <= 1.25x).
mla-speed: MLA and concat seconds per pass on the same setup, MLA per modality against concat
  (target <= 1.3x) and against the toolkit's MLA figure.
mie-speed: MIE, its parts (SAM off, GM off) and MLA seconds per pass on the mla-speed setup,
  MIE against MLA (target <= 2.3x: SAM's second forward-backward), and the seconds of one
  loss-landscape panel of each avmnist modality at the quick profile's settings (target <= 30 s).
baselines-speed: epoch-time of reconboost / ogm_ge / concat / pmr on the ReconBoost speed
  setup (mfeat fac + fou, MLP encoders 216|76 -> 128 -> 64, batch 64, SGD, 2 threads) beside a
  popular toolkit's per-pass seconds; the target is <= 0.8x those.
book: build the book of a profile with an empty run cache (or read an existing cache with
  --no-build) and print the wall time per notebook, the number of runs and analyses, and where
  their seconds go: training passes, per-epoch validation, the rest of fit, test evaluation,
  linear probes, data loading, and each analysis function. Seconds are summed over worker
  processes (CPU seconds, more than the wall time when runs go in parallel).
sweep: runs per hour of one set of configs (chapter 01's runs of a stand-in at a profile) through
  the local process pool (n_jobs) and through Dask (executor "local:N" = a LocalCluster of N
  one-thread workers, or a scheduler address), each on its own empty cache; prints
  `runs_per_hour_pool <x>` and `runs_per_hour_dask <x>`.
cache-validity: the share of a cache's runs whose key the current code still produces, and
  the share that would stay valid after an edit, simulated on a copy of the sources:
  `--add-method` (a new method file), `--edit mmlab/train.py` (any file); prints
  `valid_fraction <x>` last.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from mmlab.data import load_dataset
from mmlab.data.base import BatchLoader
from mmlab.methods import METHODS
from mmlab.train import TrainConfig, Trainer


def _bare_loop(method, splits, cfg: TrainConfig) -> float:
    torch.manual_seed(cfg.seed)
    model = method.build_model()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    loader = BatchLoader(splits.train, cfg.batch_size, shuffle=True, seed=cfg.seed)
    t0 = time.perf_counter()
    for epoch in range(cfg.epochs):
        loader.set_epoch(epoch)
        model.train()
        for batch in loader:
            loss = F.cross_entropy(model(batch).logits, batch["label"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - t0


def _trainer(method, splits, cfg: TrainConfig) -> float:
    t0 = time.perf_counter()
    Trainer(method, splits, cfg).fit()
    return time.perf_counter() - t0


def trainer_overhead(args) -> None:
    splits = load_dataset(args.dataset, **({"n_train": args.n_train} if args.n_train else {}))
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, device="cpu", validate=False)
    ratios = []
    for r in range(args.repeats):
        method = METHODS.get(args.method)(splits.info, cfg)
        # alternate which goes first, so drift in machine load hits both equally
        if r % 2 == 0:
            bare, ours = _bare_loop(method, splits, cfg), _trainer(method, splits, cfg)
        else:
            ours, bare = _trainer(method, splits, cfg), _bare_loop(method, splits, cfg)
        ratios.append(ours / bare)
        print(f"run {r}: trainer {ours:.3f}s  bare {bare:.3f}s  ratio {ours / bare:.4f}", flush=True)
    print(f"trainer_overhead_ratio {statistics.median(ratios):.4f}")


def _kv(pairs) -> dict:
    import ast
    out = {}
    for item in pairs:
        k, _, v = item.partition("=")
        try:
            out[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k] = v
    return out


def _seconds_per_pass(dataset, method, epochs, batch_size, device, data_opts=None, method_opts=None,
                      optimizer="adam", lr=1e-3) -> list:
    splits = load_dataset(dataset, **(data_opts or {}))
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, device=device, validate=False,
                      optimizer=optimizer, lr=lr)
    trainer = Trainer(METHODS.get(method)(splits.info, cfg, **(method_opts or {})), splits, cfg).fit()
    return [row["train_s"] for row in trainer.history]


def epoch_time(args) -> None:
    opts = _kv(args.method_opt)
    if args.modality:
        opts["modality"] = args.modality
    torch.set_num_threads(args.threads)
    def per_pass(method, method_opts):
        return _seconds_per_pass(args.dataset, method, args.epochs, args.batch_size, args.device,
                                 _kv(args.data_opt), method_opts, args.optimizer, args.lr)

    times = per_pass(args.method, opts)
    print("per-pass seconds: " + " ".join(f"{t:.3f}" for t in times))
    s = statistics.median(times[1:] if len(times) > 1 else times)
    print(f"s_per_pass {s:.4f}")
    reference = getattr(METHODS.get(args.method), "speed_reference", None)
    if reference is not None:        # a wrapper method: against the same model without it (ERL-MR: 1.25x)
        ref_method, ref_opts = reference(opts)
        ref_times = per_pass(ref_method, ref_opts)
        ref = statistics.median(ref_times[1:] if len(ref_times) > 1 else ref_times)
        target = getattr(METHODS.get(args.method), "speed_target", None)
        verdict = "" if target is None else f"  {'ok' if s <= target * ref else 'ABOVE'} (target <= {target}x)"
        print(f"reference {ref_method} {ref_opts}: s_per_pass {ref:.4f}  ratio {s / ref:.2f}{verdict}")


# The ReconBoost speed setup's reference: a popular toolkit's implementations on mfeat (fac + fou views), MLP encoders
# 216|76 -> 128 -> 64, batch 64, SGD, 2 threads; seconds per pass over the training set.
TOOLKIT_S_PER_PASS = {"reconboost": 0.06, "ogm_ge": 0.18, "concat": 0.10, "pmr": 2.1}


def baselines_speed(args) -> None:
    """Seconds per pass of ReconBoost / OGM-GE / concat / PMR on the speed setup, against the
    toolkit's figures (target: <= 0.8x). Median over passes, first pass excluded."""
    torch.set_num_threads(args.threads)
    data = {"views": ("fac", "fou"), "train_per_class": None}      # all 1440 training digits, as measured
    mopts = {"feature_dim": 64, "encoder_options": {"fac": {"hidden": 128}, "fou": {"hidden": 128}}}
    for method, ref in TOOLKIT_S_PER_PASS.items():
        times = _seconds_per_pass("mfeat", method, args.epochs, 64, "cpu", data, mopts, "sgd", 0.01)
        s = statistics.median(times[1:])
        print(f"{method:10s} s_per_pass {s:.4f}  toolkit {ref:.2f}  ratio {s / ref:.2f}  "
              f"{'ok' if s <= 0.8 * ref else 'ABOVE 0.8x target'}", flush=True)


def mla_speed(args) -> None:
    """MLA against concat on the speed setup of baselines-speed (mfeat fac + fou, MLP encoders,
    SGD, 2 threads), beside the toolkit's MLA figure (which skips the projection it claims).
    MLA steps once per modality per batch: the target is <= 1.3x concat's s/pass per modality."""
    torch.set_num_threads(args.threads)
    data = {"views": ("fac", "fou"), "train_per_class": None}
    mopts = {"feature_dim": 64, "encoder_options": {"fac": {"hidden": 128}, "fou": {"hidden": 128}}}
    s = {}
    for label, method, extra in (("concat", "concat", {}), ("mla", "mla", {}),
                                 ("mla, projection never applied", "mla", {"projection": "never"})):
        s[label] = statistics.median(_seconds_per_pass("mfeat", method, args.epochs, 64, "cpu", data,
                                                       {**mopts, **extra}, "sgd", 0.01)[1:])
        print(f"{label:32s} s_per_pass {s[label]:.4f}", flush=True)
    per_modality = s["mla"] / 2
    print(f"mla per modality / concat {per_modality / s['concat']:.2f} (target <= 1.3); "
          f"projection cost x{s['mla'] / s['mla, projection never applied']:.2f}; "
          f"mla / toolkit {s['mla'] / TOOLKIT_MLA_S_PER_PASS:.2f} (toolkit {TOOLKIT_MLA_S_PER_PASS} s, projection skipped)")
    print(f"mla_per_modality_ratio {per_modality / s['concat']:.4f}")


# the same toolkit's MLA on that setup (its projection is never applied), seconds per pass
TOOLKIT_MLA_S_PER_PASS = 0.038


def book(args) -> None:
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path
    cache = Path(args.cache or Path("_build") / f"bench-cache-{args.profile}-{int(time.time())}")
    if not args.no_build:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mmlab.book", "--profile", args.profile], check=True,
                       env={**os.environ, "MMLAB_CACHE": str(cache.resolve())})
        print(f"book wall {time.perf_counter() - t0:.1f} s (profile {args.profile}, empty cache {cache})")
    timings = Path("_build") / "timings.json"
    if timings.exists():
        t = json.loads(timings.read_text())
        print(f"notebooks ({t['profile']}): " + ", ".join(f"{k.split('-')[0]} {v:.0f} s"
                                                          for k, v in t["seconds"].items()))
    _print_phases(cache)


def _print_phases(cache) -> None:
    import json
    import pickle
    import pandas as pd
    if not (cache / "runs").is_dir():
        raise SystemExit(f"error: {cache} holds no runs/ directory; give the MMLAB_CACHE of a book build")
    every = [json.loads(p.read_text()) for p in (cache / "runs").glob("*.json")]
    runs = [r for r in every if r.get("timings")]
    if len(runs) < len(every):
        print(f"({len(every) - len(runs)} runs recorded before per-phase timings are left out)")
    rows = [{"dataset": r["dataset"], "method": r["method"],
             "train passes": sum(h["train_s"] for h in r["history"]),
             "validation": sum(h.get("val_s", 0.0) for h in r["history"]),
             **{k[:-2]: v for k, v in r.get("timings", {}).items()}} for r in runs]
    df = pd.DataFrame(rows)
    if len(df):
        df["fit, other"] = df.pop("fit") - df["train passes"] - df["validation"]
    phases = df.drop(columns=["dataset", "method"]).sum() if len(df) else pd.Series(dtype=float)
    print(f"runs {len(df)}; CPU seconds per phase:\n{phases.round(1).to_string()}")
    if len(df):
        top = df.groupby(["dataset", "method"]).sum(numeric_only=True).sum(axis=1).sort_values()
        print("CPU seconds by dataset and method (largest last):\n" + top.round(1).tail(12).to_string())
    ana = [e for e in (pickle.loads(p.read_bytes()) for p in (cache / "analyses").glob("*.pkl"))
           if isinstance(e, dict) and "seconds" in e]         # entries from before timings: skipped
    if ana:
        a = pd.DataFrame([{"analysis": e["fn"].rsplit(".", 1)[-1], "seconds": e["seconds"]} for e in ana])
        print(f"analyses {len(a)}:\n" + a.groupby("analysis").seconds.agg(["count", "sum"]).round(1).to_string())


def cache_validity(args) -> None:
    """Recompute every cached run's key from its config, on the installed sources and on a
    copy edited as asked; a run stays a cache hit where the key is unchanged."""
    import json
    import shutil
    import tempfile
    from pathlib import Path
    from mmlab.runner import RunConfig
    files = sorted(Path(args.cache, "runs").glob("*.json"))
    if not files:
        raise SystemExit(f"error: {args.cache}/runs holds no cached runs; give the MMLAB_CACHE of a book build")
    cfgs = {p.stem: RunConfig(**json.loads(p.read_text())["config"]) for p in files}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "mmlab"
        shutil.copytree(Path(__file__).parent, root, ignore=shutil.ignore_patterns("__pycache__"))
        if args.add_method:
            (root / "methods" / "zz_new_method.py").write_text(
                "from mmlab.methods.base import Method, register\n\n\n@register('zz_new')\nclass New(Method):\n"
                "    pass\n")
        for rel in args.edit:
            path = root / Path(rel).relative_to("mmlab")
            path.write_text(path.read_text() + "\n# an edit\n")
        now = sum(cfg.hash() == key for key, cfg in cfgs.items())
        after = sum(cfg.hash(root) == key for key, cfg in cfgs.items())
    what = ", ".join((["a new method file"] if args.add_method else []) + [f"an edit of {e}" for e in args.edit])
    print(f"cached runs {len(cfgs)}; valid now {now}; valid after {what or 'no edit'}: {after}")
    print(f"valid_fraction {after / len(cfgs):.4f}")


def mie_speed(args) -> None:
    """MIE against MLA on the mla-speed setup (mfeat fac + fou, MLP encoders, SGD, 2 threads),
    then one landscape panel per avmnist modality (an untrained model: the cost does not depend
    on the weights) at the quick profile's grid and subset."""
    from mmlab.analysis.landscape import ModalityView, random_plane
    from mmlab.configs.mie import MIE_LANDSCAPE
    torch.set_num_threads(args.threads)
    data = {"views": ("fac", "fou"), "train_per_class": None}
    mopts = {"feature_dim": 64, "encoder_options": {"fac": {"hidden": 128}, "fou": {"hidden": 128}}}
    s = {}
    for label, method, extra in (("mla", "mla", {}), ("mie", "mie", {}), ("mie, SAM off", "mie", {"sam": False}),
                                 ("mie, SAM and GM off", "mie", {"sam": False, "gm": False})):
        s[label] = statistics.median(_seconds_per_pass("mfeat", method, args.epochs, 64, "cpu", data,
                                                       {**mopts, **extra}, "sgd", 0.01)[1:])
        print(f"{label:22s} s_per_pass {s[label]:.4f}", flush=True)
    print(f"mie / mla {s['mie'] / s['mla']:.2f} (target <= 2.3); SAM x{s['mie'] / s['mie, SAM off']:.2f}, "
          f"GM x{s['mie, SAM off'] / s['mie, SAM and GM off']:.2f}")
    q = MIE_LANDSCAPE["quick"]
    splits = load_dataset("avmnist", seed=0)
    model = METHODS.get("mie")(splits.info, TrainConfig(epochs=1, device="cpu")).build_model().eval()
    batch = next(iter(BatchLoader(splits.train.subset(list(range(q["n"]))), q["n"])))
    for m in model.modalities:
        t0 = time.perf_counter()
        random_plane(ModalityView(model, m), batch[m], batch["label"], q["radius"], q["steps"])
        print(f"landscape panel avmnist {m:6s} {time.perf_counter() - t0:.1f} s "
              f"({q['steps']}x{q['steps']} points, {q['n']} samples; target <= 30 s)", flush=True)
    print(f"mie_over_mla_ratio {s['mie'] / s['mla']:.4f}")


def sweep(args) -> None:
    import os
    import tempfile
    from mmlab.configs.imbalance import IMBALANCE
    from mmlab.runner import run_many
    from mmlab.studies import study_configs
    sz = IMBALANCE[args.dataset].sizes(args.profile)
    cfgs = study_configs(args.dataset, ("concat", "sum"), sz.seeds, **sz.run_kwargs("cpu"))
    rates = {}
    for name, kw in (("pool", dict(n_jobs=args.workers)), ("dask", dict(executor=args.executor))):
        with tempfile.TemporaryDirectory(prefix=f"mmlab-sweep-{name}-") as cache:
            os.environ["MMLAB_CACHE"] = cache
            if name == "dask":                        # start the cluster before the clock
                from mmlab.executors import client_for
                client_for(args.executor)
            t0 = time.perf_counter()
            run_many(cfgs, **kw)
            rates[name] = len(cfgs) / (time.perf_counter() - t0) * 3600
    from mmlab.executors import close_all
    close_all()
    print(f"{len(cfgs)} runs ({args.dataset}, {args.profile}: each modality alone, concat, sum; "
          f"{len(sz.seeds)} seeds), {args.workers} local workers vs executor {args.executor}")
    for name, r in rates.items():
        print(f"runs_per_hour_{name} {r:.1f}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m mmlab.bench")
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("trainer-overhead")
    a.add_argument("--dataset", default="avmnist")
    a.add_argument("--method", default="concat")
    a.add_argument("--epochs", type=int, default=2)
    a.add_argument("--batch-size", type=int, default=64)
    a.add_argument("--repeats", type=int, default=5)
    a.add_argument("--n-train", type=int, default=None)
    b = sub.add_parser("epoch-time")
    b.add_argument("--dataset", required=True)
    b.add_argument("--method", required=True)
    b.add_argument("--modality")
    b.add_argument("--epochs", type=int, default=4)
    b.add_argument("--batch-size", type=int, default=64)
    b.add_argument("--device", default="cpu")
    b.add_argument("--optimizer", default="adam")
    b.add_argument("--lr", type=float, default=1e-3)
    b.add_argument("--data-opt", action="append", default=[], metavar="KEY=VALUE")
    b.add_argument("--method-opt", action="append", default=[], metavar="KEY=VALUE")
    b.add_argument("--threads", type=int, default=2)
    c = sub.add_parser("baselines-speed", help="the ReconBoost speed targets (mfeat fac+fou, MLP 128->64, SGD)")
    c.add_argument("--epochs", type=int, default=8)
    c.add_argument("--threads", type=int, default=2)
    m = sub.add_parser("mla-speed", help="MLA vs concat on the baselines-speed setup")
    m.add_argument("--epochs", type=int, default=8)
    m.add_argument("--threads", type=int, default=2)
    mi = sub.add_parser("mie-speed", help="MIE vs MLA on the mla-speed setup; a landscape panel's seconds")
    mi.add_argument("--epochs", type=int, default=8)
    mi.add_argument("--threads", type=int, default=2)
    d = sub.add_parser("book", help="build a profile's book on an empty cache; seconds per phase")
    d.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    d.add_argument("--cache", help="cache directory (default: a new one under _build/)")
    d.add_argument("--no-build", action="store_true", help="only read the cache given by --cache")
    e = sub.add_parser("cache-validity", help="share of cached runs an edit leaves valid")
    e.add_argument("--cache", required=True, help="an MMLAB_CACHE directory (e.g. of `bench book`)")
    e.add_argument("--add-method", action="store_true", help="simulate adding a method file")
    e.add_argument("--edit", action="append", default=[], metavar="mmlab/FILE.py",
                   help="simulate an edit of this file (repeatable)")
    sw = sub.add_parser("sweep", help="runs/hour: local process pool vs Dask on the same configs")
    sw.add_argument("--dataset", default="watch")
    sw.add_argument("--profile", default="smoke", choices=("smoke", "quick", "full"))
    sw.add_argument("--workers", type=int, default=2, help="local pool processes")
    sw.add_argument("--executor", default="local:2", help="'local:N' or a Dask scheduler address")
    args = p.parse_args(argv)
    if args.cmd == "book" and args.no_build and not args.cache:
        p.error("--no-build needs --cache DIR (the cache of the build to break down)")
    {"trainer-overhead": trainer_overhead, "epoch-time": epoch_time, "baselines-speed": baselines_speed,
     "book": book, "cache-validity": cache_validity, "mla-speed": mla_speed,
     "mie-speed": mie_speed, "sweep": sweep}[args.cmd](args)


if __name__ == "__main__":
    main()
