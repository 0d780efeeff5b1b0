"""Alternating unimodal training through one shared head, and uncertainty-weighted fusion at
test time: the machinery MLA (CVPR 2024) introduced and MIE reuses. Registers no method.

- `SharedHeadFusion`: one head g shared by every modality; modality m's prediction is
  f_m = g(h_m(x_m)) (MLA Eq. 2), so every encoder must give features of the same width.
- `AlternatingMethod`: per batch, one optimizer step per modality in a fixed order (the
  dataset's), each on that modality's cross-entropy through the shared head only (MLA Eq. 1-2:
  iteration t trains modality t mod M; stepping every modality on each batch makes one pass
  over each modality's data per epoch, as the authors' code does). Samples whose modality is
  absent (batch["mask"]) are left out of that modality's step. Subclasses edit the head's
  gradient in `on_after_backward` (MLA's projector, MIE's SVD modification) or the step.
- `fuse`: the test-time combination of the per-modality logits, Eq. 5 of MLA,
  z = sum_m lambda_m f_m, with lambda from each modality's prediction entropy
  e_m = -p_m^T log p_m (Eq. 6) as lambda_m = softmax_m(max_v e_v - e_m) (Eq. 7; the max only
  shifts), per sample ("sample", the paper) or one weight per modality for the whole batch
  from the batch-mean entropy ("batch": the authors' code normalises over the batch dimension,
  which leaves one weight per batch), or equal weights ("mean", the "w/o DF" ablation). An
  absent modality (mask) gets weight 0.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlab.methods.base import Method
from mmlab.methods.common import check_choice
from mmlab.models import build_model
from mmlab.models.fusion import HEADS, Fusion
from mmlab.models.net import ModelOutput

FUSION_RULES = ("entropy", "mean")
WEIGHT_SCOPES = ("sample", "batch")


def entropy(logits: Tensor) -> Tensor:
    """Prediction entropy -p^T log p per row, [B] (float32)."""
    logp = torch.log_softmax(logits.float(), -1)
    return -(logp.exp() * logp).sum(-1)


def fusion_weights(logits: Dict[str, Tensor], rule: str = "entropy", scope: str = "sample",
                   present: Optional[Tensor] = None) -> Tensor:
    """lambda [B, M] (rows sum to 1) for the modalities of `logits` in their order; `present`
    Bool[B, M] (same order) zeroes absent modalities (a row with none present stays uniform)."""
    z = list(logits.values())
    if rule == "mean":
        score = torch.zeros(z[0].shape[0], len(z), device=z[0].device)
    else:
        e = torch.stack([entropy(x) for x in z], 1)                    # [B, M]
        if scope == "batch":
            e = e.mean(0, keepdim=True).expand_as(e)
        score = e.max(1, keepdim=True).values - e                     # Eq. 7's exponent
    if present is not None:
        score = score.masked_fill(~present, float("-inf"))
        score = torch.where(present.any(1, keepdim=True), score, torch.zeros_like(score))
    return torch.softmax(score, 1)


def fuse(logits: Dict[str, Tensor], rule: str = "entropy", scope: str = "sample",
         present: Optional[Tensor] = None) -> Tensor:
    """sum_m lambda_m z_m, [B, C] (MLA Eq. 5)."""
    w = fusion_weights(logits, rule, scope, present)                  # [B, M]
    z = torch.stack([x.float() for x in logits.values()], 1)          # [B, M, C]
    return (w.unsqueeze(-1) * z).sum(1)


class SharedHeadFusion(Fusion):
    """One head for every modality (features of equal width); fused output = fuse(...)."""
    masks = True

    def __init__(self, dims, num_classes, head: str = "linear", rule: str = "entropy", scope: str = "sample"):
        super().__init__(dims, num_classes)
        widths = set(dims.values())
        if len(widths) != 1:
            raise ValueError(f"a shared head needs every encoder to give features of one width, got {dims}; "
                             f"set feature_dim (every encoder's out_dim) instead of per-modality widths")
        self.head = HEADS.get(head)(widths.pop(), num_classes)
        self.rule, self.scope = rule, scope

    def per_modality(self, feats):
        return {m: self.head(feats[m]) for m in self.modalities}

    def forward(self, feats, present: Optional[Tensor] = None):
        return fuse(self.per_modality(feats), self.rule, self.scope, present)


class AlternatingMethod(Method):
    """Encoders + SharedHeadFusion, one step per modality per batch (module docstring)."""

    def __init__(self, info, train_cfg, fusion_rule: str = "entropy", fusion_scope: str = "sample", **kw):
        if kw.get("fusion") is not None:
            raise ValueError(f"{self.name} fuses through its shared head by fusion_rule="
                             f"{FUSION_RULES}; it takes no fusion= option")
        kw.pop("fusion", None)
        super().__init__(info, train_cfg, **kw)
        if len(self.modalities) < 2:
            raise ValueError(f"{self.name} alternates between modalities and needs at least two, got "
                             f"{self.modalities}")
        check_choice(self.name, "fusion_rule", fusion_rule, FUSION_RULES)
        check_choice(self.name, "fusion_scope", fusion_scope, WEIGHT_SCOPES)
        self.fusion_rule, self.fusion_scope = fusion_rule, fusion_scope
        self.stepping: Optional[str] = None      # the modality whose step is in progress

    def build_model(self) -> nn.Module:
        net = build_model(self.info, fusion="concat", modalities=self.modalities, **self.model_kwargs)
        net.fusion = SharedHeadFusion(net.fusion.dims, self.info.num_classes, self.model_kwargs["head"],
                                      self.fusion_rule, self.fusion_scope)
        return net

    @staticmethod
    def present(model, batch: dict, m: str) -> Optional[Tensor]:
        """Bool[B] of the samples whose modality m is present, or None (all present)."""
        mask = batch.get("mask")
        return None if mask is None else mask[:, model.mask_order.index(m)]

    def train_epoch(self, trainer, loader, epoch: int) -> None:
        for i, batch in enumerate(trainer.progress(loader, epoch)):
            logits, losses = {}, []
            for m in self.modalities:
                out = self.modality_step(trainer, batch, m, i, len(loader))
                if out is not None:
                    logits[m], loss = out
                    losses.append(loss)
            if len(logits) == len(self.modalities):      # log batches every modality stepped on
                fused = fuse(logits, self.fusion_rule, self.fusion_scope)
                trainer.log_batch(ModelOutput(fused, logits, {}), batch, torch.stack(losses).mean())

    def modality_loss(self, trainer, batch: dict, m: str):
        """(logits [B, C] of modality m through the shared head, CE over its present samples,
        features of the present samples [b, D]) or None when no sample has m."""
        model = trainer.model
        with trainer.autocast():
            f = model.encoders[m](batch[m])                                   # [B, D]
            z = model.fusion.head(f)                                          # [B, C]
            keep = self.present(model, batch, m)
            if keep is not None and not bool(keep.any()):
                return None
            zk, yk, fk = (z, batch["label"], f) if keep is None else (z[keep], batch["label"][keep], f[keep])
            return z, F.cross_entropy(zk, yk), fk

    def modality_step(self, trainer, batch: dict, m: str, i: int, n_batches: int):
        """Train modality m's encoder and the shared head on this batch: (logits, loss) or None."""
        out = self.modality_loss(trainer, batch, m)
        if out is None:
            return None
        z, loss, _ = out
        self.stepping = m
        try:
            trainer.optimize(loss, self.optimizers["main"])
        finally:
            self.stepping = None
        return z.detach(), loss.detach()

