"""The Trainer: devices, AMP, seeding, progress, history, validation-based selection,
atomic checkpoints and exact resume, for every Method (see mmlab.methods.base)."""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

from mmlab.data.base import BatchLoader, MMData, Splits
from mmlab.utils import atomic_torch_save, check_range, select_device

# Valid ranges of the numeric training options (mmlab.utils.check_range keyword arguments);
# TrainConfig and RunConfig check them on construction, the CLI before it parses a run.
TRAIN_RANGES = {
    "epochs": dict(lo=1, integer=True),
    "batch_size": dict(lo=1, integer=True),
    "lr": dict(lo=0, lo_open=True),
    "momentum": dict(lo=0, hi=1, hi_open=True),
    "weight_decay": dict(lo=0),
    "seed": dict(lo=0, integer=True),
    "eval_batch_size": dict(lo=1, integer=True),
    "lr_step": dict(lo=1, integer=True, allow_none=True),
    "lr_gamma": dict(lo=0, hi=1, lo_open=True),
}
CHOICES = {"optimizer": ("sgd", "adam", "adamw"), "amp": ("auto", "on", "off"), "nonfinite": ("raise", "stop"),
           "amp_dtype": ("auto", "bfloat16", "float16"), "channels_last": ("auto", "on", "off")}


def check_options(obj, ranges: dict, owner: str) -> None:
    """Every field of `obj` named in `ranges` / CHOICES within its range, else ValueError
    naming the option and the valid range (one line)."""
    for name, kw in ranges.items():
        check_range(name, getattr(obj, name), owner=owner, **kw)
    for name, valid in CHOICES.items():
        if hasattr(obj, name) and getattr(obj, name) not in valid:
            raise ValueError(f"{owner}{name} must be one of {valid}, got {getattr(obj, name)!r}")


def _modality_gap(trainer) -> dict:
    from mmlab.analysis.gap import epoch_gap
    return epoch_gap(trainer)


def _method_record(trainer) -> dict:
    return trainer.method.epoch_track(trainer)


# per-epoch measurements a run can ask for (TrainConfig.track), each (trainer) -> plain values,
# stored in the epoch's history row under "track"; "method": the method's own record of the
# epoch (Method.epoch_track, e.g. MIE's accuracy after each modality phase)
TRACKERS = {"modality_gap": _modality_gap, "method": _method_record}


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable (truncated or corrupt); the message names it and the fix."""


def remove_partial_writes(directory: Path) -> list:
    """Delete the temp files an interrupted atomic write leaves behind (`.last.pt.*.tmp`,
    `.best.pt.*.tmp`: a process killed mid-write never renamed them); returns their names.
    Finished checkpoints are never touched: a rename is atomic."""
    removed = []
    if directory.is_dir():
        for p in directory.glob(".*.pt.*.tmp"):
            p.unlink(missing_ok=True)
            removed.append(p.name)
    return removed


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names method, epoch and step."""


@dataclass
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adam"          # sgd | adam | adamw
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "auto"             # auto (CUDA, then MPS, then CPU) | cpu | cuda | cuda:1 | mps
    amp: str = "auto"                # auto: on for CUDA only | on | off
    amp_dtype: str = "auto"          # auto: bfloat16 where supported (CPU, CUDA with bf16), else float16
                                     # with a GradScaler | bfloat16 | float16 (forced: tests, old GPUs)
    eval_batch_size: int = 512
    progress: bool = False
    checkpoint_dir: Optional[str] = None
    resume: bool = False
    validate: bool = True            # False: no per-epoch validation; the last epoch is kept
    nonfinite: str = "raise"         # a NaN/inf loss: "raise" NonFiniteLossError, or "stop" training
                                     # there and keep the validation-selected epoch (Trainer.stopped)
    lr_step: Optional[int] = None    # StepLR: every optimizer's lr x lr_gamma every lr_step epochs
    lr_gamma: float = 0.1
    track: tuple = ()                # per-epoch measurements on val, by name (TRACKERS), in history
    channels_last: str = "auto"      # ResNet encoders in NHWC memory order: auto (CUDA only) | on | off

    def __post_init__(self):
        check_options(self, TRAIN_RANGES, "TrainConfig: ")
        unknown = sorted(set(self.track) - set(TRACKERS))
        if unknown:
            raise ValueError(f"TrainConfig: unknown track {unknown}; known: {sorted(TRACKERS)}")

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_amp_dtype(device: torch.device, choice: str = "auto") -> torch.dtype:
    """The autocast dtype: `choice` if forced, else bfloat16 where the device supports it (CPU;
    CUDA with torch.cuda.is_bf16_supported(); MPS as before) and float16 otherwise (older
    GPUs), the one dtype that needs a GradScaler (its 5-bit exponent underflows gradients)."""
    if choice != "auto":
        return {"bfloat16": torch.bfloat16, "float16": torch.float16}[choice]
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def wants_channels_last(choice: str, device: torch.device, model: torch.nn.Module) -> bool:
    """channels_last "on"/"off" as given; "auto": on for a CUDA run whose model has a ResNet encoder."""
    from mmlab.models.resnet import resnet_encoders
    if choice != "auto":
        return choice == "on"
    return device.type == "cuda" and bool(resnet_encoders(model))


class _Meter:
    """Running train loss and accuracies, accumulated on the device (the only per-step host
    sync is the trainer's finite-loss check)."""

    def __init__(self, device):
        self.device = device
        self.reset()

    def reset(self):
        self.loss = torch.zeros((), device=self.device)
        self.correct: Dict[str, torch.Tensor] = {}
        self.n, self.steps = 0, 0

    def update(self, out, y, loss):
        self.loss += loss.detach().float()
        self.steps += 1
        self.n += len(y)
        preds = {"fused": out.logits, **out.per_modality}
        for k, z in preds.items():
            c = (z.detach().argmax(1) == y).sum()
            self.correct[k] = self.correct.get(k, 0) + c

    def summary(self) -> dict:
        if self.steps == 0:
            return {}
        acc = {k: float(v) / self.n for k, v in self.correct.items()}
        return {"loss": float(self.loss) / self.steps, "acc": acc.pop("fused"), "per_modality": acc}


class Trainer:
    def __init__(self, method, splits: Splits, cfg: TrainConfig, train_transform=None, eval_transform=None):
        self.method, self.splits, self.cfg = method, splits, cfg
        self.device = select_device(cfg.device)
        self.amp = cfg.amp == "on" or (cfg.amp == "auto" and self.device.type == "cuda")
        self.amp_dtype = resolve_amp_dtype(self.device, cfg.amp_dtype)
        self.train_transform, self.eval_transform = train_transform, eval_transform
        self.history: List[dict] = []
        self.epoch, self.step = 0, 0
        self.best = {"epoch": -1, "score": -math.inf, "loss": math.inf, "state": None}
        self.stopped: Optional[dict] = None     # where a non-finite loss stopped training (nonfinite="stop")
        self.model = None
        self.is_writer = True       # False on the processes of a DDP run that must not write (rank > 0)

    # --- helpers used by methods ------------------------------------------------------------
    def autocast(self):
        if not self.amp:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def check_finite(self, loss: torch.Tensor) -> None:
        if not bool(torch.isfinite(loss.detach()).all()):
            raise NonFiniteLossError(
                f"method {self.method.name!r}: loss is {float(loss.detach().float().mean())} at epoch "
                f"{self.epoch}, step {self.step}; lower the learning rate, check the inputs for "
                f"NaN/inf, or try amp='off'. Checkpoints up to the last finished epoch are kept.")

    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """One plain step: backward(loss) then step(optimizer)."""
        self.backward(loss, optimizer)
        self.step_optimizer(optimizer)

    def backward(self, loss: torch.Tensor, optimizer: Optional[torch.optim.Optimizer] = None,
                 zero_grad: bool = True) -> None:
        """Check the loss is finite, zero `optimizer`'s gradients (unless zero_grad=False) and
        backpropagate the (AMP-scaled) loss. Gradients stay scaled until step_optimizer: a method
        that needs their values before the step (SAM's perturbation) reads unscaled_grads()."""
        self.check_finite(loss)
        if zero_grad and optimizer is not None:
            optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()

    def unscaled_grads(self, params) -> list:
        """The gradients of `params` divided by the AMP loss scale (copies; None where a
        parameter has no gradient), without GradScaler.unscale_, which may run once per step."""
        inv = 1.0 / self.scaler.get_scale() if self.scaler.is_enabled() else 1.0
        return [None if p.grad is None else p.grad.detach().float() * inv for p in params]

    def step_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Unscale the gradients, method.on_after_backward (edit them), step, update the scaler
        and count the step: the end of every training step, however many backward passes it had."""
        self.scaler.unscale_(optimizer)
        self.method.on_after_backward(self, optimizer)
        self.scaler.step(optimizer)
        self.scaler.update()
        self.step += 1

    def log_batch(self, out, batch, loss) -> None:
        self.meter.update(out, batch["label"], loss)

    def progress(self, loader, epoch: int):
        if not self.cfg.progress:
            return loader
        from tqdm.auto import tqdm   # imported lazily: tqdm.auto warns in kernels without ipywidgets
        return tqdm(loader, desc=f"{self.method.name} epoch {epoch + 1}/{self.cfg.epochs}", leave=False)

    def loader(self, data: MMData, train: bool) -> BatchLoader:
        if train:
            return BatchLoader(data, self.cfg.batch_size, shuffle=True, seed=self.cfg.seed,
                               transform=self.train_transform, device=self.device,
                               drop_last=len(data) % self.cfg.batch_size == 1)  # BatchNorm needs B > 1
        return BatchLoader(data, self.cfg.eval_batch_size, transform=self.eval_transform, device=self.device)

    def wrap_model(self, model: torch.nn.Module) -> torch.nn.Module:
        """The module training runs through (identity here; DistributedDataParallel in
        mmlab.distributed). Called once in setup, before the method builds its optimizers."""
        return model

    # --- fit -----------------------------------------------------------------------------
    def setup(self) -> None:
        from mmlab.models.resnet import use_channels_last
        torch.manual_seed(self.cfg.seed)
        model = self.method.build_model().to(self.device)
        if wants_channels_last(self.cfg.channels_last, self.device, model):
            use_channels_last(model)
        self.model = self.wrap_model(model)
        # loss scaling only for float16: bfloat16 has float32's exponent range
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp and self.amp_dtype == torch.float16)
        self.meter = _Meter(self.device)
        self.method.on_fit_start(self)

    def fit(self) -> "Trainer":
        self.setup()
        if self.cfg.checkpoint_dir and self.is_writer:
            remove_partial_writes(Path(self.cfg.checkpoint_dir))
        start = self._maybe_resume()
        train_loader = self.loader(self.splits.train, train=True)
        for epoch in range(start, self.cfg.epochs):
            try:
                self._run_epoch(epoch, train_loader)
            except NonFiniteLossError as e:
                # nonfinite="stop": a diverged objective ends training like early stopping, and
                # the validation-selected epoch before it is the result (none yet: re-raise)
                if self.cfg.nonfinite != "stop" or self.best["state"] is None:
                    raise
                self.stopped = {"epoch": epoch, "step": self.step, "reason": str(e).split(";")[0]}
                break
        if self.best["state"] is not None:
            self.model.load_state_dict(self.best["state"])
        return self

    def _run_epoch(self, epoch: int, train_loader) -> None:
        self.epoch = epoch
        # Seed per epoch: dropout/noise of epoch e is independent of how we got here,
        # so resuming from a checkpoint replays exactly the uninterrupted run.
        torch.manual_seed(self.cfg.seed * 100_003 + epoch)
        train_loader.set_epoch(epoch)
        self.model.train()
        self.meter.reset()
        t0 = time.perf_counter()
        self.method.on_epoch_start(self, epoch)
        self.apply_lr_schedule(epoch)
        self.method.train_epoch(self, train_loader, epoch)
        self.method.on_epoch_end(self, epoch)
        self._end_epoch(epoch, time.perf_counter() - t0)

    def apply_lr_schedule(self, epoch: int) -> None:
        """StepLR by epoch (cfg.lr_step): each param group's lr = its initial lr x
        lr_gamma^(epoch // lr_step), for every optimizer the method holds now (a method that
        creates optimizers per stage gets the epoch's rate too); a no-op without lr_step."""
        if not self.cfg.lr_step:
            return
        factor = self.cfg.lr_gamma ** (epoch // self.cfg.lr_step)
        for opt in self.method.optimizers.values():
            for g in opt.param_groups:
                g["lr"] = g.setdefault("initial_lr", g["lr"]) * factor

    def _end_epoch(self, epoch: int, train_s: float) -> None:
        t0 = time.perf_counter()
        val = self.evaluate(self.splits.val) if self.cfg.validate else {}
        row = {"epoch": epoch, "train_s": train_s, "val_s": time.perf_counter() - t0,
               "train": self.meter.summary(), "val": val}
        if self.cfg.track:
            row["track"] = {name: TRACKERS[name](self) for name in self.cfg.track}
        self.history.append(row)
        if not self.cfg.validate:                                    # keep the last epoch
            self.best = {"epoch": epoch, "score": -math.inf, "loss": math.inf, "state": None}
        elif (val["acc"], -val["loss"]) > (self.best["score"], -self.best.get("loss", math.inf)):
            # selection on val, never on test; equal accuracy (a saturated val, as on CGM
            # whose val keeps the training colour shortcut) is broken by the lower val loss
            state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
            self.best = {"epoch": epoch, "score": val["acc"], "loss": val["loss"], "state": state}
            if self.cfg.checkpoint_dir and self.is_writer:
                atomic_torch_save(state, Path(self.cfg.checkpoint_dir) / "best.pt")
        if self.cfg.checkpoint_dir and self.is_writer:
            self.save_checkpoint(Path(self.cfg.checkpoint_dir) / "last.pt", epoch)

    # --- evaluation ------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, data: MMData) -> dict:
        """Fused and per-modality logits (numpy, [N, C]) and labels [N] in eval mode."""
        self.model.eval()
        fused, per, ys = [], {}, []
        for batch in self.loader(data, train=False):
            with self.autocast():
                out = self.method.predict(self.model, batch)
            fused.append(out.logits.float().cpu())
            for m, z in out.per_modality.items():
                per.setdefault(m, []).append(z.float().cpu())
            ys.append(batch["label"].cpu())
        return {"logits": torch.cat(fused).numpy(), "labels": torch.cat(ys).numpy(),
                "per_modality": {m: torch.cat(v).numpy() for m, v in per.items()}}

    def evaluate(self, data: MMData) -> dict:
        p = self.predict(data)
        y = p["labels"]
        loss = F.cross_entropy(torch.from_numpy(p["logits"]), torch.from_numpy(y)).item()
        return {"loss": loss, "acc": float((p["logits"].argmax(1) == y).mean()),
                "per_modality": {m: float((z.argmax(1) == y).mean()) for m, z in p["per_modality"].items()}}

    # --- checkpoints -----------------------------------------------------------------------
    def save_checkpoint(self, path: Path, epoch: int) -> None:
        atomic_torch_save({
            "epoch": epoch, "step": self.step, "model": self.model.state_dict(),
            "method": self.method.state_dict(), "scaler": self.scaler.state_dict(),
            "history": self.history, "best": self.best, "config": self.cfg.to_dict(),
            "method_name": self.method.name,
        }, path)

    @staticmethod
    def _identity(cfg: dict) -> dict:
        """The config fields a resumed run must share with its checkpoint (epochs may grow;
        a field the checkpoint predates counts at its default; memory layout may change)."""
        return {k: v for k, v in {**TrainConfig().to_dict(), **cfg}.items()
                if k not in ("epochs", "resume", "progress", "checkpoint_dir", "eval_batch_size", "nonfinite",
                             "channels_last")}

    def _maybe_resume(self) -> int:
        if not (self.cfg.resume and self.cfg.checkpoint_dir):
            return 0
        path = Path(self.cfg.checkpoint_dir) / "last.pt"
        if not path.exists():
            return 0
        try:
            ck = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as e:       # truncated / corrupt zip archive, not a checkpoint, ...
            raise CheckpointError(
                f"{path} is corrupt or truncated and cannot be resumed ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:120]}); delete it to start this run fresh, or resume from "
                f"an intact copy (best.pt beside it holds only the best epoch's weights, not a "
                f"resumable state)") from None
        mine, theirs = self._identity(self.cfg.to_dict()), self._identity(ck["config"])
        if mine != theirs or ck.get("method_name") != self.method.name:
            diff = {k: (theirs.get(k), v) for k, v in mine.items() if theirs.get(k) != v}
            raise ValueError(f"{path} belongs to another run (method {ck.get('method_name')!r}, "
                             f"differences checkpoint -> now: {diff}); use a fresh checkpoint_dir")
        self.model.load_state_dict(ck["model"])
        self.method.load_state_dict(ck["method"], self.model)
        if ck["scaler"]:                    # empty when the checkpointed run had AMP off
            self.scaler.load_state_dict(ck["scaler"])
        self.history, self.step = ck["history"], ck["step"]
        best = ck["best"]
        if best["state"] is not None:
            best["state"] = {k: v.cpu() for k, v in best["state"].items()}
        self.best = best
        return ck["epoch"] + 1
