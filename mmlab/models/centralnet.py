"""CentralNet fusion (Vielzeuf, Lechervy, Pateux & Jurie, "CentralNet: a Multilayer Approach for
Multimodal Fusion", ECCV Workshops 2018).

The paper: one network per modality plus a central network. Layer by layer, the central
network's input is a weighted sum of its own previous hidden layer and every modality's
hidden layer at the same depth, with learned scalar weights alpha:

    h_C^{i+1} = alpha_C^i h_C^i + sum_m alpha_m^i h_m^i,   (h_C^0 absent: first sum over m only)

passed through the central layer. Each modality network and the central one end in their own
classifier; training minimises the central loss plus the modality losses (`own_loss`: the sum
of the modalities' cross-entropies, weight 1 each, the central one added by the method).

What we do here, and why: our encoders are interchangeable (MLPs, 1-D/2-D CNNs, GRUs) and
all end in a feature vector [B, D], so the layers CentralNet taps are a per-modality MLP
tower of `depth` layers (Linear D->D + ReLU) on top of each encoder's features, and the
central network has one layer per depth. The first weighted sum taps the encoder outputs
themselves, so depth 2 gives three fusion points. ERL-MR Table 4 (USC) taps "each layer of
the encoders"; we tap the layers after them (written as a stand-in in the chapter).
Every modality's features must have the same width D (the weighted sums add them).
alpha starts at 1 (the paper learns it; its initial value is not given).

Per-modality logits (`per_modality`) are the modality towers' own classifiers, the outputs
the paper's modality losses train.
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from mmlab.models.fusion import FUSIONS, HEADS, Fusion
from mmlab.models.memo import SameInputs


@FUSIONS.register("centralnet")
class CentralNetFusion(Fusion):
    def __init__(self, dims: Dict[str, int], num_classes: int, head: str = "linear", depth: int = 2):
        super().__init__(dims, num_classes)
        widths = set(dims.values())
        if len(dims) < 2 or len(widths) != 1:
            raise ValueError(f"centralnet fuses weighted sums of two or more modalities of one width; got "
                             f"widths {dims} (give every encoder the same feature_dim)")
        if not (isinstance(depth, int) and depth >= 1):
            raise ValueError(f"centralnet depth must be an integer >= 1 (layers per tower), got {depth!r}")
        d, self.depth = widths.pop(), depth
        self.towers = nn.ModuleDict({m: nn.ModuleList(nn.Linear(d, d) for _ in range(depth)) for m in dims})
        self.central = nn.ModuleList(nn.Linear(d, d) for _ in range(depth))
        # alpha[i, 0]: the central hidden layer's weight (unused at i = 0); alpha[i, 1 + k]: modality k's
        self.alpha = nn.Parameter(torch.ones(depth + 1, len(dims) + 1))
        self.heads = nn.ModuleDict({m: HEADS.get(head)(d, num_classes) for m in dims})
        self.central_head = HEADS.get(head)(d, num_classes)
        self._once = SameInputs(self._run)         # one pass for the fused and per-modality logits

    def _run(self, feats):
        """(central logits [B, C], {m: tower logits [B, C]}) in one pass over every layer."""
        hs = [feats[m] for m in self.modalities]                       # M x [B, D]
        central = None
        for i in range(self.depth + 1):
            mixed = sum(self.alpha[i, 1 + k] * h for k, h in enumerate(hs))
            if central is not None:
                mixed = mixed + self.alpha[i, 0] * central
            if i == self.depth:
                central = mixed
                break
            central = torch.relu(self.central[i](mixed))
            hs = [torch.relu(self.towers[m][i](h)) for m, h in zip(self.modalities, hs)]
        return self.central_head(central), {m: self.heads[m](h) for m, h in zip(self.modalities, hs)}

    def forward(self, feats):
        return self._once(feats, self.modalities)[0]

    def per_modality(self, feats):
        return self._once(feats, self.modalities)[1]

    @staticmethod
    def own_loss(per_modality: Dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        """The modality networks' losses: sum_m CE(tower logits_m, y)."""
        return sum(F.cross_entropy(z, y) for z in per_modality.values())
