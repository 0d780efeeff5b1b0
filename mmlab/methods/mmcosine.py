"""MMCosine (Xu, Feng, Zhang & Hu, "MMCosine: Multi-Modal Cosine Loss Towards Balanced Audio-Visual
Fine-Grained Learning", ICASSP 2023), with any fusion.

The paper: each modality's logits are a scaled cosine between its features and its
classifier's class weights, without bias, and the fused logits are their sum:

    z_m = s * cos(f_m, W_m) = s * (f_m / |f_m|) (W_m / |W_m|_rows)^T,   z = sum_m z_m,

trained with cross-entropy on z. Normalising both sides takes the feature and weight norms,
through which the dominant modality grows its share of the logits, out of the game;
s (the paper's scaling factor) restores a usable softmax temperature. s = 10 by default.

Fusions (ERL-MR Table 3 runs MMCosine with concat, sum, FiLM and gated):
- concat, sum: exactly the paper's form. A concat head's weight split by modality is a
  per-modality W_m (the sliced-weight view of OGM-GE), so both are the sum of per-modality
  cosine logits; they differ only in initialisation.
- any other fusion (film, gated, mmtm, ...): the features meet before the classifier, so
  there is no per-modality split of the logits; ours (no source gives one): every modality's
  features are L2-normalised before the fusion and the fusion's final linear head becomes a
  bias-free cosine classifier with scale s. Per-modality logits are then the fusion's
  `zeroed` ones, as for those fusions without MMCosine.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmlab.methods.base import Method, register
from mmlab.models.fusion import Fusion


class CosineLinear(nn.Module):
    """s * cos(x, W_k) per class k, no bias: [B, D] -> [B, C]."""

    def __init__(self, in_dim: int, num_classes: int, scale: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, in_dim))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)      # nn.Linear's initialisation
        self.scale = scale

    def forward(self, x):
        return self.scale * F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=-1).T


class CosineSumFusion(Fusion):
    """The paper's form: z = sum_m s cos(f_m, W_m); per_modality = the z_m."""

    def __init__(self, dims, num_classes, scale: float):
        super().__init__(dims, num_classes)
        self.heads = nn.ModuleDict({m: CosineLinear(d, num_classes, scale) for m, d in dims.items()})

    def per_modality(self, feats):
        return {m: self.heads[m](feats[m]) for m in self.modalities}

    def forward(self, feats):
        return torch.stack(list(self.per_modality(feats).values())).sum(0)


class NormalizedInput(Fusion):
    """Another fusion over L2-normalised modality features (its head already made cosine)."""

    def __init__(self, inner: Fusion):
        super().__init__(inner.dims, inner.num_classes)
        self.inner = inner

    def forward(self, feats):
        return self.inner({m: F.normalize(f, dim=-1) for m, f in feats.items()})

    def per_modality(self, feats):
        return self.inner.per_modality({m: F.normalize(f, dim=-1) for m, f in feats.items()})


@register("mmcosine")
class MMCosine(Method):
    fusion = "sum"
    description = "MMCosine: per-modality s*cos(f_m, W_m) logits, no bias, summed (any fusion)"

    def __init__(self, info, train_cfg, scale: float = 10.0, **kw):
        super().__init__(info, train_cfg, **kw)
        if not scale > 0:
            raise ValueError(f"mmcosine: scale s must be > 0 (the paper's s = 10), got {scale!r}")
        if len(self.modalities) < 2:
            raise ValueError(f"mmcosine needs at least two modalities, got {self.modalities}")
        self.scale = float(scale)

    def build_model(self):
        net = super().build_model()
        old = net.fusion
        if self.fusion in ("concat", "sum"):
            net.fusion = CosineSumFusion(old.dims, old.num_classes, self.scale)
            return net
        head = getattr(old, "head", None)
        if not isinstance(head, nn.Linear):
            raise ValueError(f"mmcosine with fusion {self.fusion!r}: needs a fusion whose classifier is one linear "
                             f"layer `head` (concat, sum, film, gated, mmtm with head='linear')")
        old.head = CosineLinear(head.in_features, head.out_features, self.scale)
        net.fusion = NormalizedInput(old)
        return net
