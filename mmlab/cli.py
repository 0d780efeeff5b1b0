"""Command line: `python -m mmlab datasets | methods | train ...`."""
from __future__ import annotations

import argparse
import ast
import json
import sys


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
    from mmlab.data import DATASETS, load_dataset
    for name in DATASETS.names():
        s = load_dataset(name)
        mods = ", ".join(f"{m} {tuple(shape)}" for m, shape in s.info.modalities.items())
        sz = s.sizes()
        print(f"{name:10s} classes={s.info.num_classes:<3d} train={sz['train']:<6d} val={sz['val']:<5d} "
              f"test={sz['test']:<6d} {mods}")
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


def cmd_train(args) -> int:
    from mmlab.runner import RunConfig, run
    mopts = dict(args.method_opt)
    if args.modality:
        mopts["modality"] = args.modality
    cfg = RunConfig(dataset=args.dataset, method=args.method, seed=args.seed, epochs=args.epochs,
                    batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                    weight_decay=args.weight_decay, device=args.device, amp=args.amp,
                    dataset_options=dict(args.data_opt), method_options=mopts, probe=not args.no_probe)
    r = run(cfg, cache=not args.no_cache, progress=args.progress and not args.json,
            checkpoint_dir=args.checkpoint_dir, resume=args.resume)
    print(json.dumps(r.to_json(), indent=1) if args.json else _table(r))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mmlab", description="mmlab: modality-imbalance lab")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("datasets", help="list datasets (modalities, shapes, split sizes)")
    sub.add_parser("methods", help="list registered methods")
    t = sub.add_parser("train", help="train and evaluate one method on one dataset")
    t.add_argument("--dataset", required=True)
    t.add_argument("--method", required=True)
    t.add_argument("--modality", help="for --method unimodal")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--optimizer", default="adam", choices=["sgd", "adam", "adamw"])
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    t.add_argument("--amp", default="auto", choices=["auto", "on", "off"])
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
    args = p.parse_args(argv)
    try:
        return {"datasets": cmd_datasets, "methods": cmd_methods, "train": cmd_train}[args.cmd](args)
    except (KeyError, ValueError, TypeError, ImportError, FloatingPointError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
