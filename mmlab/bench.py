"""Benchmarks (not tests): `python -m mmlab.bench trainer-overhead | epoch-time ...`.

trainer-overhead: the same model, data, optimizer and number of steps, trained by the
  mmlab Trainer (validation off, as the bare loop has none) and by a bare PyTorch loop,
  alternating runs; prints the median time ratio last: `trainer_overhead_ratio <x>`.
epoch-time: median wall seconds per pass over the training set, first pass excluded
  (so methods with stages compare fairly); prints `s_per_pass <x>` last.
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


def epoch_time(args) -> None:
    splits = load_dataset(args.dataset)
    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, device=args.device, validate=False)
    opts = {"modality": args.modality} if args.modality else {}
    trainer = Trainer(METHODS.get(args.method)(splits.info, cfg, **opts), splits, cfg).fit()
    times = [row["train_s"] for row in trainer.history]
    print("per-pass seconds: " + " ".join(f"{t:.3f}" for t in times))
    print(f"s_per_pass {statistics.median(times[1:] if len(times) > 1 else times):.4f}")


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
    args = p.parse_args(argv)
    {"trainer-overhead": trainer_overhead, "epoch-time": epoch_time}[args.cmd](args)


if __name__ == "__main__":
    main()
