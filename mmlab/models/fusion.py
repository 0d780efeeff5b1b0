"""Fusion modules: per-modality features {m: [B, D_m]} -> logits [B, C].

Every fusion also gives per-modality logits, so each method can report how well each
modality predicts on its own inside the joint model:
- concat with a linear head: the sliced-weight trick of OGM-GE: logits_m = W[:, slice_m] f_m + b / M
  (the concat logits are exactly the sum of these);
- sum / late: each modality's own head (sum: their sum is the fused output; late: the log
  of their averaged softmax is);
- FiLM, gated, concat with an MLP head: no additive split exists, so logits_m is the
  fused logits with every other modality's features set to zero (`zeroed`).
`zeroed` is also what mmlab.analysis calls the "joint-only" accuracy of a modality.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Dict, List

import torch
from torch import nn

from mmlab.registry import Registry

FUSIONS: Registry = Registry("fusion")
HEADS: Registry = Registry("head")


@HEADS.register("linear")
def linear_head(in_dim: int, num_classes: int) -> nn.Module:
    return nn.Linear(in_dim, num_classes)


@HEADS.register("mlp3")
def mlp3_head(in_dim: int, num_classes: int) -> nn.Module:
    """MIE's head: FC(D, 256) -> ReLU -> FC(256, 64) -> FC(64, C), layers named fc1, relu, fc2, fc3
    (MIE modifies the gradients of matching named layers between modalities)."""
    return nn.Sequential(OrderedDict([("fc1", nn.Linear(in_dim, 256)), ("relu", nn.ReLU()),
                                      ("fc2", nn.Linear(256, 64)), ("fc3", nn.Linear(64, num_classes))]))


class Fusion(nn.Module):
    masks = False           # True: forward(feats, present=Bool[B, M]) leaves absent modalities out

    def __init__(self, dims: Dict[str, int], num_classes: int):
        super().__init__()
        self.modalities: List[str] = list(dims)
        self.dims, self.num_classes = dict(dims), num_classes

    def per_modality(self, feats: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        return {m: self.zeroed(feats, m) for m in self.modalities}

    def zeroed(self, feats: Dict[str, torch.Tensor], keep: str) -> torch.Tensor:
        """Fused logits when only modality `keep` is seen (others' features zeroed)."""
        return self({m: f if m == keep else torch.zeros_like(f) for m, f in feats.items()})


@FUSIONS.register("concat")
class ConcatFusion(Fusion):
    def __init__(self, dims, num_classes, head: str = "linear"):
        super().__init__(dims, num_classes)
        self.head = HEADS.get(head)(sum(dims.values()), num_classes)

    def forward(self, feats):
        return self.head(torch.cat([feats[m] for m in self.modalities], dim=1))

    def per_modality(self, feats):
        if not isinstance(self.head, nn.Linear):
            return super().per_modality(feats)
        W, b, out, start = self.head.weight, self.head.bias, {}, 0
        for m in self.modalities:                     # W[:, slice_m]: [C, D_m]
            d = self.dims[m]
            out[m] = feats[m] @ W[:, start:start + d].T + b / len(self.modalities)
            start += d
        return out


class _PerModalityHeads(Fusion):
    def __init__(self, dims, num_classes, head: str = "linear"):
        super().__init__(dims, num_classes)
        self.heads = nn.ModuleDict({m: HEADS.get(head)(d, num_classes) for m, d in dims.items()})

    def per_modality(self, feats):
        return {m: self.heads[m](feats[m]) for m in self.modalities}


@FUSIONS.register("sum")
class SumFusion(_PerModalityHeads):
    """logits = sum_m head_m(f_m); trained jointly on the summed logits."""

    def forward(self, feats):
        return torch.stack(list(self.per_modality(feats).values())).sum(0)


@FUSIONS.register("late")
class LateFusion(_PerModalityHeads):
    """Per-modality heads; fused logits = log of the averaged softmax probabilities (over the
    present modalities when `present` is given)."""
    masks = True

    def forward(self, feats, present=None):
        logp = torch.stack([torch.log_softmax(z, -1) for z in self.per_modality(feats).values()])   # [M, B, C]
        if present is None:
            return torch.logsumexp(logp, 0) - torch.log(torch.tensor(float(len(logp))))
        w = present.T.to(logp.dtype)                                                   # [M, B]
        w = w / w.sum(0, keepdim=True).clamp(min=1)
        return torch.logsumexp(logp + torch.log(w).unsqueeze(-1), 0)


@FUSIONS.register("film")
class FiLMFusion(Fusion):
    """FiLM (Perez et al. 2018): the last modality x is modulated by the others y:
    [gamma, beta] = Linear(cat(y)), h = gamma * x + beta, logits = head(h)."""

    def __init__(self, dims, num_classes, head: str = "linear"):
        super().__init__(dims, num_classes)
        *cond, self.target = self.modalities
        self.cond = cond
        d = dims[self.target]
        self.film = nn.Linear(sum(dims[m] for m in cond), 2 * d)
        self.head = HEADS.get(head)(d, num_classes)

    def forward(self, feats):
        gamma, beta = self.film(torch.cat([feats[m] for m in self.cond], 1)).chunk(2, dim=1)
        return self.head(gamma * feats[self.target] + beta)


@FUSIONS.register("gated")
class GatedFusion(Fusion):
    """Gated fusion for M modalities; logits = head(h).

    gate="bi" (default): every modality gated by the others,
        h = sum_m sigmoid(G_m(cat of the other modalities)) * V_m(f_m).
    gate="one": the form MLA describes for its "BiGated" row (App. A.2: one modality's hidden
        state, through a sigmoid, gates the other hidden states before the output layer) and
        OGM-GE's code implements (its GatedFusion gates one direction, chosen by a flag): the
        first modality's hidden state gates the sum of the others',
        h = sigmoid(V_1(f_1)) * sum_{m>1} V_m(f_m).
    (The two-sided "bi" form is ours, generalising to M modalities; an earlier docstring
    attributed it to OGM-GE's code, which gates one side only.)"""

    def __init__(self, dims, num_classes, head: str = "linear", hidden: int | None = None, gate: str = "bi"):
        super().__init__(dims, num_classes)
        if gate not in ("bi", "one"):
            raise ValueError(f"gated fusion: gate must be 'bi' or 'one', got {gate!r}")
        hidden, self.gate_form = hidden or max(dims.values()), gate
        others = {m: sum(d for n, d in dims.items() if n != m) for m in dims}
        self.value = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in dims.items()})
        if gate == "bi":
            self.gate = nn.ModuleDict({m: nn.Linear(others[m], hidden) for m in dims})
        self.head = HEADS.get(head)(hidden, num_classes)

    def forward(self, feats):
        if self.gate_form == "one":
            first, *rest = self.modalities
            return self.head(torch.sigmoid(self.value[first](feats[first]))
                             * sum(self.value[m](feats[m]) for m in rest))
        h = 0
        for m in self.modalities:
            ctx = torch.cat([feats[n] for n in self.modalities if n != m], 1)
            h = h + torch.sigmoid(self.gate[m](ctx)) * self.value[m](feats[m])
        return self.head(h)


@FUSIONS.register("single")
class SingleFusion(Fusion):
    """One modality, one head: the unimodal baseline."""

    def __init__(self, dims, num_classes, head: str = "linear"):
        super().__init__(dims, num_classes)
        if len(dims) != 1:
            raise ValueError(f"'single' fusion takes one modality, got {list(dims)}")
        self.head = HEADS.get(head)(next(iter(dims.values())), num_classes)

    def forward(self, feats):
        return self.head(feats[self.modalities[0]])

    def per_modality(self, feats):
        return {self.modalities[0]: self(feats)}
