"""Command line: `python -m mmlab datasets | methods | train ...`."""
from __future__ import annotations

import argparse
import ast
import json
import sys


class _Parser(argparse.ArgumentParser):
    """Bad input gets one line naming the option and what it expects (no usage dump)."""

    def error(self, message):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _ranged(name: str):
    """argparse type for a numeric run option: parsed, then checked against its range in
    mmlab.runner.RUN_RANGES (the same check RunConfig makes)."""
    from mmlab.runner import RUN_RANGES
    from mmlab.utils import check_range
    kw = RUN_RANGES[name]

    def parse(text: str):
        try:
            value = int(text) if kw.get("integer") else float(text)
        except ValueError:
            value = text
        try:
            check_range(name.replace("_", "-"), value, **kw)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return value
    parse.__name__ = name
    return parse


def _kv(text: str):
    """Parse key=value; value as a Python literal when possible (14, 0.1, None, (1,2)), else str."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    k, v = text.split("=", 1)
    try:
        return k, ast.literal_eval(v)
    except (ValueError, SyntaxError):
        return k, v


def cmd_datasets(args) -> int:
    """Every dataset with its shapes and split sizes, the knob values of its default
    construction and, for the calibrated stand-ins, the regime measured for it."""
    from mmlab.data import DATASETS, load_dataset
    from mmlab.data.base import dataset_module
    for name in DATASETS.names():
        try:
            s = load_dataset(name)
        except FileNotFoundError as e:             # a paper's own dataset, read from a copy you supply
            if not getattr(dataset_module(name), "USER_SUPPLIED", False):
                raise
            print(f"{name:10s} not found here ({str(e).split(':')[0]}); prepare it with "
                  f"`python -m mmlab prepare {name} --root DIR`")
            continue
        mods = ", ".join(f"{m} {tuple(shape)}" for m, shape in s.info.modalities.items())
        sz = s.sizes()
        print(f"{name:10s} classes={s.info.num_classes:<3d} train={sz['train']:<6d} val={sz['val']:<5d} "
              f"test={sz['test']:<6d} {mods}")
        module = dataset_module(name)
        variants = getattr(module, "VARIANTS", None)
        if variants:
            knobs = ", ".join(f"{k}={v}" for k, v in variants["calibrated"].items())
            print(f"{'':10s} default construction (variant='calibrated'): {knobs}; "
                  f"also variant={sorted(set(variants) - {'calibrated'})}")
        if getattr(module, "REGIME", None):
            print(f"{'':10s} measured regime: {module.REGIME}")
    return 0


def cmd_prepare(args) -> int:
    """Turn a raw download of a paper's dataset into cached tensors once (resumable, atomic)."""
    from mmlab.data import DATASETS
    from mmlab.data.base import dataset_module
    module = dataset_module(args.dataset)        # unknown name: the registry's error lists the datasets
    if not hasattr(module, "prepare"):
        prep = [n for n in DATASETS.names() if hasattr(dataset_module(n), "prepare")]
        raise ValueError(f"dataset {args.dataset!r} needs no prepare step (it ships with a package); "
                         f"datasets read from a copy you supply: {prep}")
    import inspect
    opts = dict(args.data_opt)
    if "dataset" in inspect.signature(module.prepare).parameters:   # one module, several datasets
        opts.setdefault("dataset", args.dataset)
    d = module.prepare(args.root, progress=True, **opts)
    print(f"{args.dataset}: {len(d['y'])} clips prepared under $MMLAB_CACHE/data")
    return 0


def cmd_methods(args) -> int:
    from mmlab.methods import METHODS
    for name in METHODS.names():
        print(f"{name:10s} {METHODS.get(name).description}")
    return 0


def _table(r) -> str:
    t = r.metrics["test"]
    lines = [f"{r.config['method']} on {r.config['dataset']} (seed {r.config['seed']}, "
             f"{r.config['epochs']} epochs, best epoch {r.best_epoch + 1} by val, {r.wall_s:.1f}s, "
             f"device {r.device}{', cached' if r.cached else ''})",
             f"  val acc   {r.metrics['val'].get('acc', float('nan')):.4f}",
             f"  test acc  {t['acc']:.4f}   mAP {t['map']:.4f}   macro-F1 {t['f1']:.4f}",
             f"  {'modality':10s} {'per-mod':>8s} {'joint-only':>10s} {'probe':>8s} {'probe(rand)':>11s}"]
    for m, a in t["per_modality"].items():
        jo = t.get("joint_only", {}).get(m)
        cells = [f"{a:8.4f}", f"{jo:10.4f}" if jo is not None else f"{'-':>10s}",
                 f"{r.probe[m]:8.4f}" if m in r.probe else f"{'-':>8s}",
                 f"{r.probe_random[m]:11.4f}" if m in r.probe_random else f"{'-':>11s}"]
        lines.append(f"  {m:10s} " + " ".join(cells))
    lines.append(f"  config_hash {r.config_hash}")
    return "\n".join(lines)


def run_config(args):
    """The RunConfig of a parsed `train` command line."""
    from mmlab.runner import RunConfig
    mopts = dict(args.method_opt)
    if args.modality:
        mopts["modality"] = args.modality
    return RunConfig(dataset=args.dataset, method=args.method, seed=args.seed, epochs=args.epochs,
                     batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr, momentum=args.momentum,
                     weight_decay=args.weight_decay, val_fraction=args.val_fraction, device=args.device, amp=args.amp,
                     amp_dtype=args.amp_dtype, channels_last=args.channels_last, train_subset=args.train_subset,
                     dataset_options=dict(args.data_opt), method_options=mopts, probe=not args.no_probe)


def cmd_train(args, run=None) -> int:
    """Train one run (run: mmlab.runner.run, or mmlab.distributed.run_ddp under torchrun) and print it."""
    from mmlab import runner
    r = (run or runner.run)(run_config(args), cache=not args.no_cache, progress=args.progress and not args.json,
                            checkpoint_dir=args.checkpoint_dir, resume=args.resume)
    if r is not None:                   # None: a torchrun process other than rank 0 (it prints nothing)
        print(json.dumps(r.to_json(), indent=1) if args.json else _table(r))
    return 0


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m mmlab", description="mmlab: modality-imbalance lab")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    sub.add_parser("datasets", help="list datasets (modalities, shapes, split sizes)")
    sub.add_parser("methods", help="list registered methods")
    t = sub.add_parser("train", help="train and evaluate one method on one dataset")
    t.add_argument("--dataset", required=True)
    t.add_argument("--method", required=True)
    t.add_argument("--modality", help="for --method unimodal")
    t.add_argument("--epochs", type=_ranged("epochs"), default=10, help="passes over the training set (>= 1)")
    t.add_argument("--seed", type=_ranged("seed"), default=0)
    t.add_argument("--batch-size", type=_ranged("batch_size"), default=64)
    t.add_argument("--optimizer", default="adam", choices=["sgd", "adam", "adamw"])
    t.add_argument("--lr", type=_ranged("lr"), default=1e-3)
    t.add_argument("--momentum", type=_ranged("momentum"), default=0.9, help="SGD momentum, in [0, 1)")
    t.add_argument("--weight-decay", type=_ranged("weight_decay"), default=0.0)
    t.add_argument("--val-fraction", type=_ranged("val_fraction"), default=0.1,
                   help="fraction of train held out for model selection, in (0, 1)")
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    t.add_argument("--amp", default="auto", choices=["auto", "on", "off"])
    t.add_argument("--amp-dtype", default="auto", choices=["auto", "bfloat16", "float16"],
                   help="half precision under AMP (auto: bfloat16 where supported, else float16 + GradScaler)")
    t.add_argument("--channels-last", default="auto", choices=["auto", "on", "off"],
                   help="ResNet encoders in NHWC memory order (auto: on CUDA)")
    t.add_argument("--train-subset", type=_ranged("train_subset"), default=None,
                   help="a stratified, seeded subsample of this many training samples")
    t.add_argument("--data-opt", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option, e.g. --data-opt image_patch=14 (repeatable)")
    t.add_argument("--method-opt", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="method option, e.g. --method-opt feature_dim=64 (repeatable)")
    t.add_argument("--no-probe", action="store_true", help="skip the linear probes")
    t.add_argument("--no-cache", action="store_true", help="ignore and do not write the result cache")
    t.add_argument("--checkpoint-dir", help="write a checkpoint every epoch here")
    t.add_argument("--resume", action="store_true", help="continue from --checkpoint-dir/last.pt")
    t.add_argument("--progress", action="store_true", help="tqdm progress bars")
    t.add_argument("--json", action="store_true", help="print one JSON object")
    pr = sub.add_parser("prepare", help="turn a raw download of a dataset into cached tensors (resumable)")
    pr.add_argument("dataset")
    pr.add_argument("--root", required=True, help="the folder holding the dataset's files")
    pr.add_argument("--data-opt", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                    help="preprocessing option, e.g. --data-opt frames=3 (repeatable)")
    return p


def main(argv=None, run=None) -> int:
    """`python -m mmlab ...`; run replaces mmlab.runner.run for `train` (mmlab.distributed)."""
    args = parser().parse_args(argv)
    try:
        if args.cmd == "train":
            return cmd_train(args, run)
        return {"datasets": cmd_datasets, "methods": cmd_methods, "prepare": cmd_prepare}[args.cmd](args)
    except (KeyError, ValueError, TypeError, ImportError, FloatingPointError, RuntimeError,
            FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
