"""Uni-Modal Teacher (UMT; Du et al., ICML 2023, "On Uni-Modal Feature Learning in
Supervised Multi-Modal Learning", arXiv 2305.01233, Sec. 5 "UME and UMT"; first proposed in
Du et al. 2021, "Improving Multi-Modal Learning with Uni-Modal Teachers", arXiv 2106.11059).

1. Teachers: for every modality m a uni-modal model (encoder + linear head, the registered
   "unimodal" method) is trained first, in a nested run of mmlab.train.Trainer on the same
   splits and TrainConfig (no checkpoints, no resume, `teacher_epochs` epochs, default the
   run's epochs), with its own validation-based epoch selection.
2. Student: a late-fusion multi-modal model (per-modality encoders + heads, fused logits
   = sum of the per-modality logits: fusion "sum", `fusion=` overrides it) trained with

       L = CE(fused logits, y) + distill_weight * sum_m MSE(phi_m^student(x_m), phi_m^teacher(x_m))

   i.e. the pre-trained uni-modal FEATURES (encoder outputs) are distilled into the
   corresponding encoders of the multi-modal model; MSE is the mean over batch and
   feature dimensions. Teachers are frozen: eval mode, requires_grad off, every teacher
   forward under torch.no_grad().

Teacher training happens lazily at the start of the first epoch (not in on_fit_start,
which runs before the trainer loads a checkpoint): a resumed run rebuilds the teachers
from the method state (their state dicts are in extra_state) and never retrains them.
The nested runs are wrapped in torch.random.fork_rng, so they do not move the global RNG
the student's first epoch sees. Their wall time is counted in epoch 0's train_s.

Hyperparameters: distill_weight (BalanceBenchmark's UMT default alpha = 1; the paper's
per-dataset value was not recoverable from the text available here), teacher_epochs
(= the run's epochs), fusion ("sum"). Needs >= 2 modalities.

Where we differ from the authors' code / setup:
- Public UMT code (BalanceBenchmark's UMT trainer) loads separately trained uni-modal
  checkpoints; here teachers are trained inside the run with the run's optimiser settings,
  so a UMT result is self-contained and cached as one run.
- Students start from scratch (as in that trainer); teachers are selected on val, never
  on test (most public code selects on test).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from mmlab.methods.base import Method, register
from mmlab.methods.unimodal import Unimodal     # static: the teachers' code is part of a umt run's key


def train_teacher(trainer, info, model_kwargs: dict, modality: str, epochs: int) -> nn.Module:
    """The uni-modal teacher of `modality`, validation-selected and frozen. Inside a cached
    run (`method.run_config` set by mmlab.runner) it is the cached run of method "unimodal"
    with the same data, seed and recipe (the very model a study reports as "<m> alone",
    trained once for every method that needs it); otherwise, or under a train transform,
    a nested Trainer run on trainer.splits. Module-level so tests can count calls."""
    run_cfg = getattr(trainer.method, "run_config", None)
    if run_cfg is not None and trainer.train_transform is None and trainer.eval_transform is None:
        return _cached_teacher(run_cfg, model_kwargs, modality, epochs, trainer.device)
    from mmlab.train import Trainer
    cfg = replace(trainer.cfg, epochs=epochs, checkpoint_dir=None, resume=False)
    method = Unimodal(info, cfg, modality=modality, **model_kwargs)
    devices = [trainer.device] if trainer.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        nested = Trainer(method, trainer.splits, cfg, train_transform=trainer.train_transform,
                         eval_transform=trainer.eval_transform).fit()
    return freeze(nested.model)


def _cached_teacher(run_cfg, model_kwargs: dict, modality: str, epochs: int, device) -> nn.Module:
    from mmlab.runner import trained
    opts = {k: v for k, v in model_kwargs.items() if v is not None}
    teacher = replace(run_cfg, method="unimodal", epochs=epochs, method_options={"modality": modality, **opts})
    _, model, _ = trained(teacher)
    return freeze(model.to(device))


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode, no gradients (and none left over from the teacher's last step)."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
        p.grad = None
    return model


@register("umt")
class UMT(Method):
    fusion = "sum"
    description = "Uni-Modal Teacher: late fusion + MSE distillation of pre-trained uni-modal encoder features"

    def __init__(self, info, train_cfg, distill_weight: float = 1.0, teacher_epochs: Optional[int] = None, **kw):
        super().__init__(info, train_cfg, **kw)
        if len(self.modalities) < 2:
            raise ValueError(f"umt needs at least two modalities, got {self.modalities}; "
                             f"for one modality use method 'unimodal'")
        if distill_weight < 0:
            raise ValueError(f"distill_weight must be >= 0, got {distill_weight}")
        if teacher_epochs is not None and int(teacher_epochs) < 1:
            raise ValueError(f"teacher_epochs must be >= 1, got {teacher_epochs}")
        self.distill_weight = float(distill_weight)
        self.teacher_epochs = int(teacher_epochs or train_cfg.epochs)
        self.teachers: Optional[Dict[str, nn.Module]] = None
        self._teacher_states: Optional[dict] = None        # from a checkpoint, until rebuilt

    # --- teachers --------------------------------------------------------------------------
    def _rebuild_teacher(self, m: str, state: dict, device) -> nn.Module:
        model = Unimodal(self.info, self.cfg, modality=m, **self.model_kwargs).build_model()
        model.load_state_dict(state)
        return freeze(model.to(device))

    def ensure_teachers(self, trainer) -> None:
        if self.teachers is not None:
            return
        if self._teacher_states is not None:          # resumed: rebuild, never retrain
            self.teachers = {m: self._rebuild_teacher(m, s, trainer.device) for m, s in self._teacher_states.items()}
        elif self.distill_weight == 0:                # plain late fusion: no teachers needed
            self.teachers = {}
        else:
            self.teachers = {m: train_teacher(trainer, self.info, self.model_kwargs, m, self.teacher_epochs)
                             for m in self.modalities}
        self._teacher_states = None

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self.ensure_teachers(trainer)

    # --- objective -------------------------------------------------------------------------
    @torch.no_grad()
    def teacher_features(self, batch: dict) -> Dict[str, torch.Tensor]:
        """Frozen teachers' encoder features {m: [B, D]} (masked like the student's)."""
        return {m: t.encode(batch)[m] for m, t in self.teachers.items()}

    def distill_loss(self, student_feats: Dict[str, torch.Tensor],
                     teacher_feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        """sum_m MSE(student_m, teacher_m), computed in float32 (AMP-safe)."""
        return sum(F.mse_loss(student_feats[m].float(), teacher_feats[m].float()) for m in self.modalities)

    def training_step(self, trainer, batch):
        with trainer.autocast():
            out = trainer.model(batch)
            loss = F.cross_entropy(out.logits, batch["label"])
            if self.distill_weight:
                loss = loss + self.distill_weight * self.distill_loss(out.features, self.teacher_features(batch))
        trainer.optimize(loss, self.optimizers["main"])
        trainer.log_batch(out, batch, loss)

    # --- state -----------------------------------------------------------------------------
    def extra_state(self) -> dict:
        if self.teachers is None:
            return {}
        return {"teachers": {m: {k: v.detach().clone() for k, v in t.state_dict().items()}
                             for m, t in self.teachers.items()}}

    def load_extra_state(self, state: dict) -> None:
        if "teachers" in state:
            self.teachers, self._teacher_states = None, state["teachers"]
