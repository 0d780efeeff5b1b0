"""CentralNet (Vielzeuf et al., ECCV Workshops 2018) as a training method: the "centralnet"
fusion (mmlab.models.centralnet: per-modality towers, a central network over learned weighted
sums of their hidden layers) trained on the central cross-entropy plus one cross-entropy per
modality network, the paper's objective with weights 1. ERL-MR Table 4's intermediate fusion;
`erl_mr` with fusion="centralnet" adds ERL-MR to it.
"""
from __future__ import annotations

import torch.nn.functional as F

from mmlab.methods.base import Method, register
from mmlab.models.centralnet import CentralNetFusion


@register("centralnet")
class CentralNet(Method):
    fusion = "centralnet"
    description = "CentralNet: central network over weighted sums of per-modality hidden layers, per-modality losses"

    def __init__(self, info, train_cfg, depth: int = 2, **kw):
        super().__init__(info, train_cfg, **kw)
        if self.fusion != "centralnet":
            raise ValueError(f"centralnet is its own fusion; fusion={self.fusion!r} is not allowed (leave it out)")
        self.fusion_options.setdefault("depth", depth)

    def loss(self, out, batch):
        y = batch["label"]
        return F.cross_entropy(out.logits, y) + CentralNetFusion.own_loss(out.per_modality, y)
