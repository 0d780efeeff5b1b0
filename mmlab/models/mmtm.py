"""MMTM fusion: Multimodal Transfer Module (Joze et al., CVPR 2020, arXiv 1911.08670).

The paper's module, between two CNN streams with feature maps A, B:
  squeeze      S_m = global average pool of modality m's map            [B, D_m]
  joint code   Z = W [S_1, ..., S_M] + b                                [B, D_Z]
  excitation   E_m = W_m Z + b_m,   m~ = 2 * sigmoid(E_m) (.) m          (channel-wise)
so each modality's channels are re-scaled by gates in (0, 2) computed from ALL modalities
(a squeeze-and-excitation block whose squeeze is shared across streams). The paper
inserts MMTM between intermediate conv blocks of the two CNNs (and generalises it to more
streams the same way: one joint code, one excitation per stream).

What we do here, and why: our encoders are interchangeable (MLPs, GRUs, 1-D/2-D CNNs,
ResNet-18) and all end in a feature vector [B, D_m], so we apply ONE MMTM, at the
encoder outputs. The squeeze is then the identity (there is no spatial/temporal axis
left to pool), and the module reduces to cross-modal channel gating of the final
features, followed by concatenation and the head (same `head` convention as
ConcatFusion): logits = head([f_1 * 2 sigmoid(E_1), ..., f_M * 2 sigmoid(E_M)]).
This is weaker than the paper's multi-stage insertion (no early exchange of information),
and it is what the "+ MMTM" rows of ReconBoost Table 4/14 get from this library.

Hyperparameters: ratio = 4, D_Z = sum_m D_m / ratio (the reduction ratio the paper
states). A ReLU follows Z, as in the authors' released module.

Where we differ from the authors' code:
- their module gates with sigmoid (gates in (0, 1)); we follow the paper's 2 * sigmoid,
  so a zero excitation leaves the features unchanged;
- their joint width is 2 * sum_m D_m / ratio; ours sum_m D_m / ratio (the paper's);
- one module at the encoder outputs instead of one per intermediate block (see above).

Per-modality logits (`per_modality`): the inherited `zeroed` rule, i.e. the fused logits
with every other modality's features set to zero. Note that zeroing the others also
changes the kept modality's own gates, because Z is computed from all modalities: the
per-modality logits are "m through the MMTM when the others are silent", not m's
features as gated during joint inference.
"""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from mmlab.models.fusion import FUSIONS, HEADS, Fusion


@FUSIONS.register("mmtm")
class MMTMFusion(Fusion):
    def __init__(self, dims: Dict[str, int], num_classes: int, head: str = "linear", ratio: float = 4):
        super().__init__(dims, num_classes)
        if len(dims) < 2:
            raise ValueError(f"'mmtm' fusion exchanges information between modalities; it needs at "
                             f"least two, got {list(dims)}")
        if ratio <= 0:
            raise ValueError(f"mmtm reduction ratio must be > 0, got {ratio}")
        total = sum(dims.values())
        joint = max(1, int(total / ratio))                                # D_Z
        self.squeeze = nn.Linear(total, joint)                            # W, b
        self.excite = nn.ModuleDict({m: nn.Linear(joint, d) for m, d in dims.items()})   # W_m, b_m
        self.head = HEADS.get(head)(total, num_classes)

    def excitation(self, feats: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """Gates 2 * sigmoid(E_m) in (0, 2), {m: [B, D_m]}, from all modalities' features."""
        s = torch.cat([feats[m] for m in self.modalities], dim=1)       # squeeze = identity: [B, sum D]
        z = torch.relu(self.squeeze(s))                                   # joint code Z: [B, D_Z]
        return {m: 2 * torch.sigmoid(self.excite[m](z)) for m in self.modalities}

    def forward(self, feats):
        gates = self.excitation(feats)
        return self.head(torch.cat([feats[m] * gates[m] for m in self.modalities], dim=1))
