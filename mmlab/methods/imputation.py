"""Missing-modality baselines that impute an absent modality's features from the present ones
(AE, MMIN; MLA Table 2): the shared plumbing. Registers no method.

`ImputeFusion`: an imputer module fills the features of the absent modalities (`present`,
Bool[B, M]; absent features are zero on input: MultimodalNet.encode), and a linear head
classifies the concatenation. A modality's own prediction is the model's prediction when only
that modality is present (the others imputed from it).

`ImputingMethod` trains it on the data's missing pattern (batch["mask"]) and, to learn the
imputation where the target is known, additionally hides each present modality with
probability `drop` (never every modality of a sample): the imputer is trained to give back
the hidden features (mean squared error, weight `recon_weight`, on detached targets, so the
encoders learn from the classification loss only), and the classifier sees the imputed
vector. At test only the data's own mask applies.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlab.methods.base import Method
from mmlab.models import build_model
from mmlab.models.fusion import Fusion
from mmlab.models.net import ModelOutput


def all_present(feats: Dict[str, Tensor]) -> Tensor:
    f = next(iter(feats.values()))
    return torch.ones(len(f), len(feats), dtype=torch.bool, device=f.device)


class ImputeFusion(Fusion):
    masks = True

    def __init__(self, dims, num_classes, imputer: nn.Module):
        super().__init__(dims, num_classes)
        self.imputer = imputer
        self.head = nn.Linear(sum(dims.values()), num_classes)

    def classify(self, full: Dict[str, Tensor]) -> Tensor:
        return self.head(torch.cat([full[m] for m in self.modalities], 1))

    def forward(self, feats, present: Optional[Tensor] = None):
        present = all_present(feats) if present is None else present
        return self.classify(self.imputer(feats, present))

    def per_modality(self, feats):
        out = {}
        for j, m in enumerate(self.modalities):
            only = torch.zeros_like(all_present(feats))
            only[:, j] = True
            out[m] = self({n: f if n == m else torch.zeros_like(f) for n, f in feats.items()}, only)
        return out


def simulate_drops(present: Tensor, drop: float, generator: torch.Generator) -> Tensor:
    """present with each True entry set False with probability `drop`, keeping at least one
    modality per sample that had one (an originally present one, by the same generator)."""
    u = torch.rand(present.shape, generator=generator).to(present.device)
    seen = present & (u >= drop)
    lost = ~seen.any(1) & present.any(1)
    if lost.any():
        r = torch.rand(present.shape, generator=generator).to(present.device)
        pick = (r * present).argmax(1)
        seen[lost, pick[lost]] = True
    return seen


class ImputingMethod(Method):
    """Subclasses give `make_imputer(dims)`: a module (feats, present) -> {m: [B, D_m]} that
    returns the present features as they are and fills the absent ones."""

    def __init__(self, info, train_cfg, drop: float = 0.3, recon_weight: float = 1.0, **kw):
        if kw.get("fusion") is not None:
            raise ValueError(f"{self.name} classifies the concatenation of imputed features; it takes no fusion=")
        kw.pop("fusion", None)
        super().__init__(info, train_cfg, **kw)
        if not (0 <= drop < 1) or recon_weight < 0:
            raise ValueError(f"{self.name}: drop must be in [0, 1) and recon_weight >= 0, got {drop}, {recon_weight}")
        self.drop, self.recon_weight = float(drop), float(recon_weight)
        self.generator = torch.Generator().manual_seed(train_cfg.seed)

    def make_imputer(self, dims: Dict[str, int]) -> nn.Module:
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        net = build_model(self.info, fusion="concat", modalities=self.modalities, **self.model_kwargs)
        dims = {m: e.out_dim for m, e in net.encoders.items()}
        net.fusion = ImputeFusion(dims, self.info.num_classes, self.make_imputer(dims))
        return net

    def training_step(self, trainer, batch: dict) -> None:
        model = trainer.model
        with trainer.autocast():
            feats = model.encode(batch)                                   # absent modalities zero
            present = model.present(batch)
            present = all_present(feats) if present is None else present
            seen = simulate_drops(present, self.drop, self.generator)
            shown = {m: f * seen[:, j:j + 1].to(f.dtype) for j, (m, f) in enumerate(feats.items())}
            full = model.fusion.imputer(shown, seen)
            logits = model.fusion.classify(full)
            recon = self.reconstruction_loss(full, feats, present & ~seen) + self.extra_loss(model, full, shown, seen)
            loss = F.cross_entropy(logits, batch["label"]) + self.recon_weight * recon
        trainer.optimize(loss, self.optimizers["main"])
        trainer.log_batch(ModelOutput(logits, {}, {}), batch, loss)

    @staticmethod
    def reconstruction_loss(full: Dict[str, Tensor], target: Dict[str, Tensor], hidden: Tensor) -> Tensor:
        """Mean squared error of the imputed features where a present modality was hidden."""
        errs = torch.cat([((full[m] - target[m].detach()) ** 2).mean(1)[hidden[:, j]] for j, m in enumerate(full)])
        return errs.mean() if len(errs) else torch.zeros((), device=hidden.device)

    def extra_loss(self, model, full, shown, seen) -> Tensor:
        """A method's further imputation loss (MMIN's backward imagination); none by default."""
        return torch.zeros((), device=seen.device)
