"""The Method API: what a training method may change, through loop-level hooks.

The Trainer (mmlab.train) owns devices, AMP, seeding, progress, history, validation-based
model selection, checkpoints and resume. A Method owns everything else:

  build_model()                    -> the nn.Module (default: encoders + self.fusion)
  configure_optimizers(model)      -> {name: optimizer}; may be called again by the method
                                      (fresh optimizers per stage, as ReconBoost/MIE do)
  on_fit_start / on_epoch_start / on_epoch_end(trainer, epoch)
                                   -> extra passes over data (PMR prototypes, MIE covariances),
                                      stage selection (ReconBoost), schedules
  train_epoch(trainer, loader, epoch)
                                   -> the loop over batches; alternating methods override it
                                      (MLA: one step per modality per batch)
  training_step(trainer, batch)    -> one forward / loss / trainer.optimize(...) by default
  loss(out, batch)                 -> the objective (default: cross-entropy on fused logits)
  on_after_backward(trainer, optimizer)
                                   -> edit gradients between backward and step (OGM-GE, MLA, MIE)
  predict(model, batch)            -> test-time fusion (MLA entropy weights, QMF, TMC)
  state_dict / load_state_dict     -> method state saved in checkpoints (P matrices, prototypes,
                                      stage index, blend weights) plus its optimizers

One trainer "epoch" is always one pass over the training set, so stage-based methods map
epochs to stages themselves and resume exactly at epoch boundaries. The validation-selected
epoch restores model weights only: a method whose predict() reads its own state must keep
that state in the model (as buffers) or snapshot it itself in on_epoch_end.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from mmlab.models import build_model
from mmlab.models.net import ModelOutput
from mmlab.registry import Registry

METHODS: Registry = Registry("method")


def register(name: str):
    """Class decorator: `@register("concat")` makes the method available by name."""
    def deco(cls):
        cls.name = name
        return METHODS.register(name)(cls)
    return deco


def make_optimizer(params, cfg) -> torch.optim.Optimizer:
    """Optimizer from the run's train config (name, lr, momentum, weight decay)."""
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; use 'sgd', 'adam' or 'adamw'")


class Method:
    name = "base"
    fusion = "concat"
    description = ""
    run_config = None     # the RunConfig when run by mmlab.runner (lets a method reuse cached runs)

    def __init__(self, info, train_cfg, modalities=None, encoders=None, feature_dim: int = 128,
                 head: str = "linear", encoder_options=None, fusion: str | None = None, pretrained: bool = False,
                 pretrain_epochs: int = 20, fusion_options=None):
        self.info, self.cfg = info, train_cfg
        # pretrained=True: every encoder starts from a unimodal run on data outside the benchmark
        # (mmlab.methods.pretrain; the stand-in of MLA's CLIP encoders)
        if not isinstance(pretrained, bool) or not (isinstance(pretrain_epochs, int) and pretrain_epochs >= 1):
            raise ValueError(f"pretrained must be True/False and pretrain_epochs an integer >= 1, got "
                             f"{pretrained!r}, {pretrain_epochs!r}")
        self.pretrained, self.pretrain_epochs = pretrained, pretrain_epochs
        if fusion is not None:        # e.g. fusion="mmtm" for the "OGM-GE + MMTM" rows
            self.fusion = fusion
        self.modalities = list(modalities or info.modality_names)
        self.model_kwargs = dict(encoders=encoders, feature_dim=feature_dim, head=head,
                                 encoder_options=encoder_options)
        self.fusion_options = dict(fusion_options or {})      # e.g. {"gate": "one"} for fusion "gated"
        self.optimizers: Dict[str, torch.optim.Optimizer] = {}

    # --- model and optimizers ---------------------------------------------------------
    def build_model(self) -> nn.Module:
        return build_model(self.info, fusion=self.fusion, modalities=self.modalities, **self.model_kwargs,
                           fusion_options=self.fusion_options)

    def configure_optimizers(self, model: nn.Module) -> Dict[str, torch.optim.Optimizer]:
        return {"main": make_optimizer(model.parameters(), self.cfg)}

    # --- loop-level hooks -------------------------------------------------------------
    def on_fit_start(self, trainer) -> None:
        if self.pretrained:
            from mmlab.methods.pretrain import pretrained_encoders
            for m, state in pretrained_encoders(self.run_config, self.modalities, self.model_kwargs,
                                                self.pretrain_epochs).items():
                trainer.model.encoders[m].load_state_dict(state)
        self.optimizers = self.configure_optimizers(trainer.model)

    def on_epoch_start(self, trainer, epoch: int) -> None:
        pass

    def on_epoch_end(self, trainer, epoch: int) -> None:
        pass

    def train_epoch(self, trainer, loader, epoch: int) -> None:
        for batch in trainer.progress(loader, epoch):
            self.training_step(trainer, batch)

    def training_step(self, trainer, batch: dict) -> None:
        with trainer.autocast():
            out = trainer.model(batch)
            loss = self.loss(out, batch)
        trainer.optimize(loss, self.optimizers["main"])
        trainer.log_batch(out, batch, loss)

    def loss(self, out: ModelOutput, batch: dict) -> torch.Tensor:
        return F.cross_entropy(out.logits, batch["label"])

    def on_after_backward(self, trainer, optimizer) -> None:
        pass

    def predict(self, model: nn.Module, batch: dict) -> ModelOutput:
        return model(batch)

    def epoch_track(self, trainer) -> dict:
        """The method's own record of the epoch just trained, for runs with track=("method",)
        (plain values, stored in the history row); none by default."""
        return {}

    # --- state for checkpoints ----------------------------------------------------------
    def extra_state(self) -> dict:
        """Method-specific state (tensors / plain values only: loaded with weights_only=True)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def state_dict(self) -> dict:
        return {"optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
                "extra": self.extra_state()}

    def load_state_dict(self, state: dict, model: nn.Module) -> None:
        # Method state first: a stage-based method needs it to rebuild the optimizer of
        # the current stage over the right parameters before loading that optimizer's state.
        self.load_extra_state(state["extra"])
        self.optimizers = {k: self.make_named_optimizer(k, model) for k in state["optimizers"]}
        for k, s in state["optimizers"].items():
            self.optimizers[k].load_state_dict(s)

    def make_named_optimizer(self, key: str, model: nn.Module) -> torch.optim.Optimizer:
        """Recreate optimizer `key` (over the same parameters as when it was saved) on
        resume; methods that create optimizers per stage override this."""
        return self.configure_optimizers(model)[key]
