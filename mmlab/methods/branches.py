"""Per-modality branches of a model with per-modality heads (fusion "sum": encoder m and head m
form modality m's whole uni-modal model), each with an optimizer of its own: shared by the
methods that step each modality's branch separately (UME, MIE). Registers no method."""
from __future__ import annotations

from typing import Dict

import torch
from torch import nn

from mmlab.methods.base import make_optimizer


def branch(model: nn.Module, m: str) -> nn.ModuleDict:
    """Modality m's encoder and head (its whole uni-modal model)."""
    return nn.ModuleDict({"encoder": model.encoders[m], "head": model.fusion.heads[m]})


def branch_optimizers(model: nn.Module, modalities, cfg) -> Dict[str, torch.optim.Optimizer]:
    """{modality: an optimizer (the run's settings) over that modality's branch}."""
    return {m: make_optimizer(branch(model, m).parameters(), cfg) for m in modalities}
