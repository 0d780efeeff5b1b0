"""AE: autoencoder imputation of missing modalities (the "AE" row of MLA Table 2; Bengio et al.
2006 as MLA cites it), on the plumbing of mmlab.methods.imputation.

For each modality m a decoder d_m (Linear -> ReLU -> Linear, hidden 2 x D_m) maps the
concatenated features of the OTHER modalities (zero where absent) to m's features; an absent
modality's features are replaced by d_m's output, present ones kept. Trained with the
classification loss on the imputed concatenation plus the reconstruction error on present
modalities hidden at random (`drop`, `recon_weight`; see imputation.py).

MLA gives no architecture for its AE baseline (it quotes the numbers of earlier work); this is
the plain form: one denoising decoder per modality on top of our encoders, no pretraining.
"""
from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor, nn

from mmlab.methods.base import register
from mmlab.methods.imputation import ImputingMethod


class AEImputer(nn.Module):
    def __init__(self, dims: Dict[str, int]):
        super().__init__()
        self.modalities = list(dims)
        total = sum(dims.values())
        self.decoders = nn.ModuleDict({m: nn.Sequential(nn.Linear(total - d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))
                                       for m, d in dims.items()})

    def forward(self, feats: Dict[str, Tensor], present: Tensor) -> Dict[str, Tensor]:
        out = {}
        for j, m in enumerate(self.modalities):
            others = torch.cat([feats[n] for n in self.modalities if n != m], 1)     # [B, sum of others]
            guess = self.decoders[m](others)
            out[m] = torch.where(present[:, j:j + 1], feats[m], guess)
        return out


@register("ae")
class AE(ImputingMethod):
    description = "AE: per-modality decoders impute an absent modality's features from the others"

    def make_imputer(self, dims):
        return AEImputer(dims)
