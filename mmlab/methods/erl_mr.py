"""ERL-MR: Euler Representation Learning-based Modality Rebalance (Han, Cai, Guo & Peng, ACM MM
2024, ../shared/papers/erl-mr.txt), a wrapper of any fusion: `erl_mr` with fusion="concat" |
"sum" | "film" | "gated" | "mmtm" | "centralnet".

Euler feature transform (Sec. 4.1), per modality m, on the encoder's features e [B, N]:
  r = mu (.) cos(e),  p = mu (.) sin(e)              Eqs. 5-7: e read as phases, learnable
                                                     moduli mu [N] (the complex vector r + ip)
  r^ = W r + b,  p^ = W p + b                        Eq. 8: ONE compression layer per modality,
                                                     shared by the real and imaginary parts
  e_new = ReLU(r^) (+) ReLU(p^)                      Eqs. 9-10: concatenated, width N again
The fusion then sees e_new where it saw e. So W maps N -> N / 2 (the paper states that e_new
keeps e's width); N must be even.

Multimodal constrained (MMC) loss (Sec. 4.2), added to the fusion's cross-entropy:
  phi_m = atan2(p^_m, r^_m)                          Eq. 11 (pre-ReLU compressed parts) [B, N/2]
  C1 = sum over adjacent pairs (m_i, m_i+1) of mean_batch (1 - cos(phi_m_i, phi_m_i+1))   Eq. 12
  C2 = sum_m CE(f(x^m), y)                           Eq. 13, one CE per modality
  L  = CE(fused, y) + c1_weight C1 + c2_weight C2    Eq. 14 (weights 1: the paper's sum)

Switches (Table 5's ablation): euler (E), c1 (C1), c2 (C2). C1 needs E (the phases exist only
after the transform; the paper runs no C1-only setting either). All off = the plain fusion:
the same model, loss and gradients as the joint method of that fusion (tested).

Open choices (no public code; each is ours):
- "Adjacent pairs": Eq. 14's first sum runs m_i = 0..M-1 over pairs (m_i, m_i+1), which reads
  off the end for the last modality; c1_pairs="chain" (default) takes the M-1 pairs of the
  modality order, "cycle" adds the pair (last, first).
- f(x^m) in Eq. 13, the logits of modality m alone: the fusion's own per-modality logits
  (concat: its sliced head weights + b / M, sum: each modality's head, FiLM / gated / MMTM:
  the fused head with the other modalities' transformed features zeroed, CentralNet: its
  modality towers' heads), so C2 adds no layer.
- mu starts at 1; W, b at PyTorch's Linear initialisation.
- CentralNet already trains its modality towers with their own cross-entropies; ERL-MR's C2
  comes on top of them (CentralNet^dagger = CentralNet's loss + the MMC loss).
- The transform is applied once, at the encoder outputs, for every fusion (Table 4 applies
  MMTM inside the encoders; our MMTM and CentralNet tap the encoder outputs too).
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mmlab.methods.base import Method, register
from mmlab.methods.common import as_bool, check_choice
from mmlab.models import centralnet as _centralnet  # noqa: F401  (registers the "centralnet" fusion)
from mmlab.models.fusion import Fusion
from mmlab.models.memo import SameInputs

PAIRS = ("chain", "cycle")


class EulerTransform(nn.Module):
    """Eqs. 5-10 for one modality: e [B, N] -> (e_new [B, N], phase [B, N/2])."""

    def __init__(self, width: int):
        super().__init__()
        if width % 2:
            raise ValueError(f"the Euler transform keeps the feature width N by concatenating two N/2 "
                             f"halves, so N must be even; got N = {width} (set an even feature_dim)")
        self.mu = nn.Parameter(torch.ones(width))                   # moduli mu [N]
        self.compress = nn.Linear(width, width // 2)                # W, b shared by r and p

    def forward(self, e: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        rp = torch.cat([self.mu * torch.cos(e), self.mu * torch.sin(e)])      # [2B, N]: r over p
        r_hat, p_hat = self.compress(rp).chunk(2)                             # 2 x [B, N/2]
        return torch.cat([torch.relu(r_hat), torch.relu(p_hat)], 1), torch.atan2(p_hat, r_hat)


class EulerFusion(Fusion):
    """Any fusion over Euler-transformed features; `phases(feats)` gives each modality's phi."""

    def __init__(self, inner: Fusion):
        super().__init__(inner.dims, inner.num_classes)
        self.inner = inner
        self.euler = nn.ModuleDict({m: EulerTransform(d) for m, d in inner.dims.items()})
        self._once = SameInputs(self._transform)     # one transform per batch for all three readers

    def _transform(self, feats):
        out = {m: self.euler[m](feats[m]) for m in self.modalities}
        return {m: o[0] for m, o in out.items()}, {m: o[1] for m, o in out.items()}

    def phases(self, feats) -> Dict[str, torch.Tensor]:
        return self._once(feats, self.modalities)[1]

    def forward(self, feats):
        return self.inner(self._once(feats, self.modalities)[0])

    def per_modality(self, feats):
        return self.inner.per_modality(self._once(feats, self.modalities)[0])


def phase_cosine_loss(phases, pairs: str = "chain") -> torch.Tensor:
    """C1 (Eq. 12 summed as in Eq. 14): sum over adjacent modality pairs of the batch mean of
    1 - cos(phi_i, phi_i+1); phases: M tensors [B, K] in modality order."""
    pairs_ix = [(i, i + 1) for i in range(len(phases) - 1)]
    if pairs == "cycle" and len(phases) > 2:
        pairs_ix.append((len(phases) - 1, 0))
    return sum((1 - F.cosine_similarity(phases[i], phases[j], dim=1)).mean() for i, j in pairs_ix)


@register("erl_mr")
class ERLMR(Method):
    fusion = "concat"
    description = "ERL-MR: Euler feature transform per modality + phase-cosine and per-modality CE losses (any fusion)"
    speed_target = 1.25        # s per pass against the same fusion without ERL-MR (mmlab.bench epoch-time)

    def __init__(self, info, train_cfg, euler: bool = True, c1: bool = True, c2: bool = True,
                 c1_weight: float = 1.0, c2_weight: float = 1.0, c1_pairs: str = "chain", **kw):
        super().__init__(info, train_cfg, **kw)
        self.euler, self.c1, self.c2 = as_bool("euler", euler), as_bool("c1", c1), as_bool("c2", c2)
        if self.c1 and not self.euler:
            raise ValueError("erl_mr: c1 (the phase cosine) needs euler=True: phases exist only after the Euler "
                             "transform (the paper runs no C1-only setting either); set c1=False or euler=True")
        if min(c1_weight, c2_weight) < 0:
            raise ValueError(f"erl_mr: c1_weight and c2_weight must be >= 0, got {c1_weight}, {c2_weight}")
        check_choice("erl_mr", "c1_pairs", c1_pairs, PAIRS)
        if len(self.modalities) < 2:
            raise ValueError(f"erl_mr needs at least two modalities, got {self.modalities}")
        self.c1_weight, self.c2_weight, self.c1_pairs = float(c1_weight), float(c2_weight), c1_pairs
        self.net = None

    def build_model(self):
        net = super().build_model()
        if self.euler:
            net.fusion = EulerFusion(net.fusion)
        self.net = net
        return net

    def loss(self, out, batch):
        y = batch["label"]
        fusion = self.net.fusion
        inner = fusion.inner if self.euler else fusion
        loss = F.cross_entropy(out.logits, y)
        if hasattr(inner, "own_loss"):                 # CentralNet's modality losses
            loss = loss + inner.own_loss(out.per_modality, y)
        if self.c1:
            phases = fusion.phases(out.features)
            loss = loss + self.c1_weight * phase_cosine_loss([phases[m] for m in self.modalities], self.c1_pairs)
        if self.c2:
            loss = loss + self.c2_weight * sum(F.cross_entropy(z, y) for z in out.per_modality.values())
        return loss

    @staticmethod
    def speed_reference(opts: dict) -> Tuple[str, dict]:
        """The same fusion without ERL-MR, for `python -m mmlab.bench epoch-time` (method, options)."""
        fusion = opts.get("fusion", ERLMR.fusion)
        if fusion == "centralnet":
            return "centralnet", {k: v for k, v in opts.items() if k != "fusion"}
        keep = {k: v for k, v in opts.items() if k not in ("euler", "c1", "c2", "c1_weight", "c2_weight", "c1_pairs")}
        return "concat", {**keep, "fusion": fusion}
