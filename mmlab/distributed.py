"""One run across several processes (GPUs) with DistributedDataParallel.

    torchrun --nproc_per_node=N -m mmlab.distributed --dataset D --method M [train options]

takes the options of `python -m mmlab train` (its parser is reused) and gives the result of
one process training on the same global batches, up to the order of floating-point sums:

- process group: nccl when the run's device resolves to CUDA (process r on cuda:LOCAL_RANK),
  gloo on CPU; the model is wrapped in DistributedDataParallel (DDP averages gradients).
- data: every process walks the same shuffled global batches of batch_size (BatchLoader's
  order for (seed, epoch)) and takes its contiguous slice of each (ShardedLoader). Uneven
  slices are weighted (the loss of a slice of n_r of the N samples is scaled by n_r * W / N
  before backward, so DDP's average is the gradient of the global batch mean); a last global
  batch smaller than the number of processes is dropped (one process would train on it).
- BatchNorm: converted to SyncBatchNorm on CUDA (batch statistics over the global batch, as
  one process computes them). SyncBatchNorm has no CPU kernel, so on CPU each process
  normalises its slice with its own statistics (a warning says so) and the results match one
  process only for models without BatchNorm (the MLP/GRU/conv1d encoders); buffers are made
  equal at every epoch end by broadcasting process 0's.
- validation (model selection) runs on every process over the whole split with the bare
  model (identical weights and data, so identical choices, without communication); test and
  probes run on process 0 after training. Train loss/accuracies are all-reduced per epoch.
- checkpoints and resume: every process resumes from the same last.pt; ONLY process 0
  writes anything (checkpoints, the result cache, the data cache: it loads the data first).
- methods: the plain single-loss, single-optimizer ones (DDP_METHODS). Methods with several
  optimizers, per-modality stages, extra passes over the data or gradient edits between
  backward and step are refused by name. Dropout draws its masks per process (other values
  than one process would draw): the equality holds for deterministic forward passes.
"""
from __future__ import annotations

import contextlib
import datetime
import io
import os
import sys
import warnings
from dataclasses import replace
from typing import Iterator, Optional

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mmlab import runner
from mmlab.data.base import BatchLoader
from mmlab.train import NonFiniteLossError, Trainer
from mmlab.utils import select_device

# single loss, one optimizer, one backward/step per batch, no hooks that see other batches
DDP_METHODS = ("concat", "sum", "film", "gated", "late", "unimodal", "mmcosine", "centralnet", "erl_mr")


def check_supported(method: str, method_options: Optional[dict] = None) -> None:
    """ValueError unless `method` trains under DDP as it does in one process."""
    if method not in DDP_METHODS:
        raise ValueError(f"method {method!r} is not supported across processes (several optimizers, stages, "
                         f"extra passes over the data or gradient edits); supported: {', '.join(DDP_METHODS)}")
    if (method_options or {}).get("pretrained"):
        raise ValueError("pretrained=True is not supported across processes (its pretraining runs are "
                         "trained and cached per process); run them once in one process first")


def init(device: str = "auto", timeout_s: float = 600.0) -> int:
    """Join the process group torchrun describes (env RANK, WORLD_SIZE, MASTER_ADDR/PORT):
    nccl if `device` resolves to CUDA, else gloo; returns this process's rank. No-op if joined."""
    if not dist.is_initialized():
        cuda = select_device(device).type == "cuda"
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
    return dist.get_rank()


class ShardedLoader:
    """This process's slice of every global batch of `loader` (a BatchLoader of the global
    batch size): process r of W takes the r-th of W contiguous, near-equal parts of each."""

    def __init__(self, loader: BatchLoader, rank: int, world: int):
        if loader.batch_size < world:
            raise ValueError(f"batch_size {loader.batch_size} is smaller than the {world} processes: "
                             f"every process needs a sample of each batch")
        self.loader, self.rank, self.world = loader, rank, world
        self.share = 1.0 / world         # n_r / N of the batch last yielded

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        n, b = len(self.loader.data), self.loader.batch_size
        steps = len(self.loader)
        last = b if self.loader.drop_last or n % b == 0 else n % b
        return steps - 1 if steps and last < self.world else steps

    def __iter__(self) -> Iterator[dict]:
        for idx in self.loader.indices():                    # [N] the global batch, as one process sees it
            if len(idx) < self.world:                        # the last one only: a process would get none
                return
            mine = idx.tensor_split(self.world)[self.rank]   # [~N / W] this process's slice
            self.share = len(mine) / len(idx)
            yield self.loader.batch(mine)


class _DDP(DistributedDataParallel):
    """DDP that reads like the model it wraps: its attributes (encoders, fusion, modalities)
    and unprefixed state dicts, so methods and checkpoints see one process's names."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "module":
                raise
            return getattr(self.module, name)

    def state_dict(self, *args, **kwargs):
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)


def sync_batchnorm(model: nn.Module, device: torch.device, warn: bool = True) -> nn.Module:
    """BatchNorm layers -> SyncBatchNorm on CUDA (statistics of the global batch, as one
    process computes them); unchanged on CPU, where SyncBatchNorm has no kernel (a warning
    says the processes normalise their slices separately)."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return model
    if torch.device(device).type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if warn:
        warnings.warn("DDP on CPU: BatchNorm normalises each process's slice with its own statistics "
                      "(SyncBatchNorm needs CUDA), so results differ from one process", stacklevel=2)
    return model


class DDPTrainer(Trainer):
    """The Trainer of one process of a DDP run (see the module docstring); after fit its
    `model` is the bare module again, as with one process."""

    def __init__(self, method, splits, cfg, train_transform=None, eval_transform=None):
        check_supported(method.name)
        super().__init__(method, splits, cfg, train_transform, eval_transform)
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self.is_writer = self.rank == 0
        if self.device.type == "cuda":
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        self.train_loader: Optional[ShardedLoader] = None

    def wrap_model(self, model: nn.Module) -> nn.Module:
        model = sync_batchnorm(model, self.device, warn=self.rank == 0)
        ids = [self.device.index] if self.device.type == "cuda" else None
        # buffers: made equal once per epoch (_sync_buffers), not broadcast at every forward
        return _DDP(model, device_ids=ids, broadcast_buffers=False)

    def loader(self, data, train: bool):
        inner = super().loader(data, train)
        if not train:
            return inner                   # evaluation: the whole split on every process
        self.train_loader = ShardedLoader(inner, self.rank, self.world)
        return self.train_loader

    def _weight(self) -> float:
        """n_r * W / N: DDP's mean over processes of the scaled slice losses' gradients is
        the gradient of the global batch's mean loss (1.0 when the slices are equal)."""
        return self.train_loader.share * self.world if self.train_loader is not None else 1.0

    def backward(self, loss, optimizer=None, zero_grad: bool = True) -> None:
        super().backward(loss * self._weight(), optimizer, zero_grad)

    def check_finite(self, loss: torch.Tensor) -> None:
        """All processes stop at the same step when any loss is NaN/inf (else the others hang)."""
        ok = torch.isfinite(loss.detach()).all().to(torch.float32).reshape(1)
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
        if not bool(ok):
            super().check_finite(loss)        # this process's loss is the NaN/inf one: the usual message
            raise NonFiniteLossError(f"method {self.method.name!r}: the loss of another process is NaN/inf at "
                                     f"epoch {self.epoch}, step {self.step}; see its message")

    def log_batch(self, out, batch, loss) -> None:
        # the slice's loss weighted by n_r / N: summed over processes it is the global batch's mean
        self.meter.update(out, batch["label"], loss.detach() * self.train_loader.share)

    def _reduce_meter(self) -> None:
        """The epoch's train loss and accuracies over all processes (sums of the slices')."""
        m, keys = self.meter, sorted(self.meter.correct)
        t = torch.stack([m.loss.double(), torch.tensor(float(m.n), dtype=torch.float64, device=self.device),
                         *[torch.as_tensor(m.correct[k], device=self.device).double() for k in keys]])
        dist.all_reduce(t)                   # [2 + K] sums
        m.loss, m.n = t[0].float(), int(t[1])
        m.correct = {k: int(v) for k, v in zip(keys, t[2:].tolist())}

    def _sync_buffers(self) -> None:
        for b in self.model.module.buffers():      # BatchNorm running stats: process 0's everywhere
            dist.broadcast(b, src=0)

    def _end_epoch(self, epoch: int, train_s: float) -> None:
        self._reduce_meter()
        self._sync_buffers()
        ddp, self.model = self.model, self.model.module     # validate / checkpoint the bare model
        try:
            super()._end_epoch(epoch, train_s)
        finally:
            self.model = ddp

    def fit(self) -> "DDPTrainer":
        super().fit()
        self.model = self.model.module
        return self


def _warm_data(cfg) -> None:
    """Process 0 loads the dataset first (writing its prepared-data cache if missing), then
    the others, which only read it."""
    from mmlab.data import load_dataset
    if dist.get_rank() == 0:
        load_dataset(cfg.dataset, seed=cfg.seed, val_fraction=cfg.val_fraction, **cfg.dataset_options)
    dist.barrier()


def run_ddp(cfg, cache: bool = True, progress: bool = False, checkpoint_dir: Optional[str] = None,
            resume: bool = False, force: bool = False, wait: bool = True):
    """mmlab.runner.run across the processes of a torchrun launch (call it on every one):
    process 0 trains, tests, probes and caches as run() does; the others only train with it
    and return their own, unprobed and uncached, Result (or the cached one on a hit)."""
    check_supported(cfg.method, cfg.method_options)
    rank = init(cfg.device)
    hit = runner.cached_result(cfg) if rank == 0 and cache and not force else None
    box = [hit]
    dist.broadcast_object_list(box, src=0)      # all train, or none
    if box[0] is not None:
        return box[0]
    _warm_data(cfg)
    if rank == 0:
        return runner.run(cfg, cache=cache, progress=progress, checkpoint_dir=checkpoint_dir, resume=resume,
                          force=True, wait=wait, trainer_cls=DDPTrainer)
    return runner._train(replace(cfg, probe=False), False, checkpoint_dir, resume, trainer_cls=DDPTrainer)


def main(argv=None) -> int:
    """`torchrun --nproc_per_node=N -m mmlab.distributed --dataset D --method M [options of
    python -m mmlab train]`: the CLI's train command with run() = run_ddp; process 0 prints."""
    from mmlab import cli
    argv = sys.argv[1:] if argv is None else list(argv)
    rank = int(os.environ.get("RANK", 0))
    quiet = contextlib.nullcontext() if rank == 0 else contextlib.redirect_stdout(io.StringIO())
    try:
        with quiet:
            return cli.main(["train", *argv], run=run_ddp)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
