"""MMIN: Missing Modality Imagination Network (Zhao, Li, Jin; ACL 2021), as a baseline of MLA
Table 2, on the plumbing of mmlab.methods.imputation.

MMIN imagines the missing modalities with a cascaded residual autoencoder (CRA; Tran et al.
2017): the concatenated features x (absent modalities zero) pass K autoencoder blocks, each
adding its output to the running estimate, x_k = x_{k-1} + AE_k(x_{k-1}); the absent parts of
x_K are the imagined features ("forward imagination"). A second CRA maps the imagined full
vector back to the observed one ("backward imagination"), and the cycle-consistency loss asks
it to return the present features, so the imagination keeps what was observed. Losses:
cross-entropy on the classifier, MSE of the forward imagination on modalities hidden during
training (imputation.py), MSE of the backward imagination on the present ones.

Where we differ from the paper: its encoders are pretrained on complete data and frozen
while the imagination trains, its classifier reads the CRA blocks' bottleneck features, and
it enumerates every missing pattern of each training sample; here the encoders train jointly,
the classifier reads the completed feature vector, and missing patterns are sampled (`drop`).
Blocks: K = `blocks` (2), each Linear(D, D/2) -> ReLU -> Linear(D/2, D) on the D-wide
concatenation; cycle weight `cycle_weight` (1.0).
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlab.methods.base import register
from mmlab.methods.imputation import ImputingMethod


class CRA(nn.Module):
    """Cascaded residual autoencoder on [B, D]: x_k = x_{k-1} + AE_k(x_{k-1})."""

    def __init__(self, width: int, blocks: int = 2):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width // 2), nn.ReLU(),
                                                  nn.Linear(width // 2, width)) for _ in range(blocks))

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = x + block(x)
        return x


class MMINImputer(nn.Module):
    def __init__(self, dims: Dict[str, int], blocks: int = 2):
        super().__init__()
        self.modalities, self.dims = list(dims), dict(dims)
        width = sum(dims.values())
        self.forward_cra, self.backward_cra = CRA(width, blocks), CRA(width, blocks)

    def split(self, x: Tensor) -> Dict[str, Tensor]:
        return dict(zip(self.modalities, torch.split(x, [self.dims[m] for m in self.modalities], 1)))

    def imagine(self, feats: Dict[str, Tensor]) -> Tensor:
        return self.forward_cra(torch.cat([feats[m] for m in self.modalities], 1))

    def forward(self, feats: Dict[str, Tensor], present: Tensor) -> Dict[str, Tensor]:
        guess = self.split(self.imagine(feats))
        return {m: torch.where(present[:, j:j + 1], feats[m], guess[m]) for j, m in enumerate(self.modalities)}


@register("mmin")
class MMIN(ImputingMethod):
    description = "MMIN: cascaded residual autoencoders imagine absent modalities, with a cycle loss"

    def __init__(self, info, train_cfg, blocks: int = 2, cycle_weight: float = 1.0, **kw):
        if not (isinstance(blocks, int) and blocks >= 1) or cycle_weight < 0:
            raise ValueError(f"mmin: blocks must be an integer >= 1 and cycle_weight >= 0, got {blocks}, {cycle_weight}")
        self.blocks, self.cycle_weight = blocks, float(cycle_weight)
        super().__init__(info, train_cfg, **kw)

    def make_imputer(self, dims):
        return MMINImputer(dims, self.blocks)

    def extra_loss(self, model, full, shown, seen) -> Tensor:
        """Backward imagination: the imagined full vector mapped back gives the shown features."""
        imp = model.fusion.imputer
        back = imp.split(imp.backward_cra(torch.cat([full[m] for m in imp.modalities], 1)))
        errs = torch.cat([((back[m] - shown[m].detach()) ** 2).mean(1)[seen[:, j]] for j, m in enumerate(imp.modalities)])
        return self.cycle_weight * errs.mean()
