"""Combination rules of per-modality predictions and the objectives that go with them, shared
by several methods: TMC's Dempster-Shafer fusion of Dirichlet opinions and its loss (the TMC
method, ReconBoost's final="tmc"), QMF's energy-weighted fusion, ranking regulariser and
objective (the QMF method, ReconBoost's final="qmf"), and OGM-GE's discrepancy ratios (OGM-GE,
PMR). Derivations and deviations from the authors' code: the docstrings of tmc.py, qmf.py and
ogm_ge.py. This module registers no method.
"""
from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor


# --- TMC (Han et al., ICLR 2021) ------------------------------------------------------------
def _check_logits(logits: Dict[str, Tensor]) -> None:
    if not logits:
        raise ValueError("TMC needs logits of at least one modality: a dict {modality: [B, C] tensor}")


def evidence(logits: Tensor) -> Tensor:
    """Evidence e = softplus(z) >= 0, [B, C], in float32 (safe under autocast)."""
    return F.softplus(logits.float())


def ds_combine_two(alpha1: Tensor, alpha2: Tensor) -> Tensor:
    """Reduced Dempster-Shafer combination of two Dirichlet opinions, [B, C] each -> [B, C].

    Equal to the paper's belief/uncertainty rule (Definition 3.1) mapped back to
    alpha = b S + 1 with S = C / u; in evidence form e = e1 + e2 + e1 e2 / C.
    """
    num_classes = alpha1.shape[1]
    e1, e2 = alpha1 - 1, alpha2 - 1
    return e1 + e2 + e1 * e2 / num_classes + 1


def tmc_alpha(logits: Dict[str, Tensor]) -> Tensor:
    """Dirichlet parameters of the fused opinion, [B, C] (pairwise DS over the modalities)."""
    _check_logits(logits)
    alphas = [evidence(z) + 1 for z in logits.values()]
    fused = alphas[0]
    for a in alphas[1:]:
        fused = ds_combine_two(fused, a)
    return fused


def tmc_combine(logits: Dict[str, Tensor]) -> Tensor:
    """log(alpha / S) of the fused Dirichlet, [B, C]: log expected class probabilities."""
    alpha = tmc_alpha(logits)
    return torch.log(alpha) - torch.log(alpha.sum(1, keepdim=True))


def uncertainty(alpha: Tensor) -> Tensor:
    """Subjective-logic uncertainty mass u = C / S, [B]."""
    return alpha.shape[1] / alpha.sum(1)


def kl_to_uniform_dirichlet(alpha: Tensor) -> Tensor:
    """KL(Dir(alpha) || Dir(1, ..., 1)) per sample, [B]."""
    num_classes = alpha.shape[1]
    S = alpha.sum(1)                                                       # [B]
    log_norm = torch.lgamma(S) - torch.lgamma(alpha).sum(1) - math.lgamma(num_classes)
    return log_norm + ((alpha - 1) * (torch.digamma(alpha) - torch.digamma(S)[:, None])).sum(1)


def dirichlet_loss(alpha: Tensor, y: Tensor, kl_weight: float) -> Tensor:
    """Per-sample L_ace + kl_weight * KL(Dir(alpha~) || Dir(1)), [B] (paper Sec. 3.3)."""
    onehot = F.one_hot(y, alpha.shape[1]).to(alpha.dtype)                  # [B, C]
    S = alpha.sum(1, keepdim=True)
    ace = (onehot * (torch.digamma(S) - torch.digamma(alpha))).sum(1)      # [B]
    alpha_tilde = onehot + (1 - onehot) * alpha                            # misleading evidence only
    return ace + kl_weight * kl_to_uniform_dirichlet(alpha_tilde)


def annealing_weight(epoch: int, annealing_epochs: int = 10) -> float:
    """lambda_t = min(1, t / annealing_epochs) with t = epoch + 1: `epoch` is the trainer's
    0-based pass index and the authors count epochs from 1, so the first pass has
    lambda = 1 / annealing_epochs. The one rule for TMC's loss wherever it is trained
    (the TMC method and ReconBoost's final="tmc" rectification)."""
    if annealing_epochs <= 0:
        raise ValueError(f"annealing_epochs must be a positive number of epochs, got {annealing_epochs}")
    return min(1.0, (epoch + 1) / annealing_epochs)


def tmc_loss(logits: Dict[str, Tensor], y: Tensor, epoch: int, annealing_epochs: int = 10) -> Tensor:
    """TMC's objective: batch mean of L_acc(fused) + sum_m L_acc(alpha_m), with the KL term
    annealed by annealing_weight(epoch) (epoch: the trainer's 0-based pass index)."""
    _check_logits(logits)
    lam = annealing_weight(epoch, annealing_epochs)
    alphas = [evidence(z) + 1 for z in logits.values()]
    total = dirichlet_loss(tmc_alpha(logits), y, lam)
    for a in alphas:
        total = total + dirichlet_loss(a, y, lam)
    return total.mean()


# --- QMF (Zhang et al., ICML 2023) ----------------------------------------------------------
WEIGHTINGS = ("softmax", "code")
RANK_MARGINS = ("enforce", "code")


def check_qmf_options(temperature: float, weighting: str = "softmax") -> None:
    if temperature <= 0:
        raise ValueError(f"QMF energy temperature must be > 0, got {temperature}")
    if weighting not in WEIGHTINGS:
        raise ValueError(f"QMF weighting={weighting!r} is not one of {WEIGHTINGS}")


def energy(z: Tensor, temperature: float = 1.0) -> Tensor:
    """Energy score E = -T logsumexp(z / T), [B] (float32); higher = less confident."""
    return -temperature * torch.logsumexp(z.float() / temperature, dim=1)


def qmf_confidence(logits: Dict[str, Tensor], temperature: float = 1.0, scale: float = 0.1) -> Tensor:
    """Per-sample, per-modality confidence c = -scale * E, [B, M] (differentiable)."""
    if not logits:
        raise ValueError("QMF needs logits of at least one modality: a dict {modality: [B, C] tensor}")
    check_qmf_options(temperature)
    return torch.stack([-scale * energy(z, temperature) for z in logits.values()], dim=1)


def qmf_weights(logits: Dict[str, Tensor], temperature: float = 1.0, scale: float = 0.1,
                weighting: str = "softmax", present: Tensor | None = None) -> Tensor:
    """Modality weights [B, M] (columns in dict order): softmax over modalities of the
    confidence -scale * E (sums to 1 per sample), or the raw confidence (weighting="code").
    `present` Bool[B, M]: an absent modality gets weight 0 (a sample with none keeps all)."""
    check_qmf_options(temperature, weighting)
    conf = qmf_confidence(logits, temperature, scale)
    if present is not None:
        present = present | ~present.any(1, keepdim=True)
        conf = conf.masked_fill(~present, float("-inf")) if weighting == "softmax" else conf * present
    return conf.softmax(dim=1) if weighting == "softmax" else conf


def qmf_combine(logits: Dict[str, Tensor], temperature: float = 1.0, scale: float = 0.1,
                weighting: str = "softmax", present: Tensor | None = None) -> Tensor:
    """Fused logits [B, C] = sum_m w_m z_m with detached weights w = qmf_weights(logits)."""
    w = qmf_weights(logits, temperature, scale, weighting, present).detach()   # [B, M]
    z = torch.stack([v.float() for v in logits.values()])                  # [M, B, C]
    return torch.einsum("bm,mbc->bc", w, z)


def qmf_rank_loss(confidence: Tensor, history: Tensor, rank_margin: str = "enforce") -> Tensor:
    """QMF's sample-wise ranking regulariser for one modality, a scalar.

    confidence: [B] c_i (with grad); history: [B] normalised past loss h_i of the same
    samples. Pairs (i, i+1 cyclic): a sample with the larger past loss should be the less
    confident one. Pairs with equal history contribute 0 (g = 0 and gap = 0).
    """
    if rank_margin not in RANK_MARGINS:
        raise ValueError(f"QMF rank_margin={rank_margin!r} is not one of {RANK_MARGINS}")
    c_next, h_next = confidence.roll(-1), history.roll(-1)
    g = torch.sign(history - h_next)                     # +1: i was harder than its partner
    gap = (history - h_next).abs()
    sign = 1.0 if rank_margin == "enforce" else -1.0
    return torch.relu(g * (confidence - c_next) + sign * gap).mean()


class QMFObjective:
    """QMF's training objective with its per-sample loss history (state), shared by the QMF
    method and ReconBoost's `final="qmf"` rectification stage:
        L = CE(fused, y) + sum_m CE(z_m, y) + lam * sum_m L_rank,m
    `history` [M, N_train] holds each training sample's summed past CE per modality."""

    def __init__(self, modalities, lam: float = 0.1, temperature: float = 1.0, scale: float = 0.1,
                 rank_margin: str = "enforce"):
        check_qmf_options(temperature)
        if rank_margin not in RANK_MARGINS:
            raise ValueError(f"QMF rank_margin={rank_margin!r} is not one of {RANK_MARGINS}")
        if lam < 0:
            raise ValueError(f"QMF lam (ranking weight) must be >= 0, got {lam}")
        self.modalities = list(modalities)
        self.lam, self.temperature, self.scale, self.rank_margin = lam, temperature, scale, rank_margin
        self.history: Tensor | None = None

    def start(self, n_train: int, device) -> None:
        self.history = torch.zeros(len(self.modalities), n_train, device=device)

    def update_history(self, per_modality: Dict[str, Tensor], y: Tensor, index: Tensor) -> None:
        """h_m[index] += per-sample CE of modality m (detached)."""
        idx = index.to(self.history.device)
        for k, m in enumerate(self.modalities):
            ce = F.cross_entropy(per_modality[m].detach().float(), y, reduction="none")
            self.history[k].index_add_(0, idx, ce.to(self.history.device))

    def normalised_history(self, k: int, idx: Tensor) -> Tensor:
        """Min-max normalised (over the training set) history of modality k at idx, [B]."""
        h = self.history[k]
        span = h.max() - h.min()
        span = torch.where(span > 0, span, torch.ones_like(span))   # constant history -> all 0
        return (h[idx.to(h.device)] - h.min()) / span

    def __call__(self, fused: Tensor, per_modality: Dict[str, Tensor], y: Tensor, index: Tensor) -> Tensor:
        per = {m: per_modality[m].float() for m in self.modalities}
        loss = F.cross_entropy(fused.float(), y) + sum(F.cross_entropy(z, y) for z in per.values())
        if self.lam == 0 or self.history is None:
            return loss
        conf = qmf_confidence(per, self.temperature, self.scale)             # [B, M], with grad
        rank = sum(qmf_rank_loss(conf[:, k], self.normalised_history(k, index).to(conf.device),
                                 self.rank_margin) for k in range(len(self.modalities)))
        return loss + self.lam * rank

    def state(self) -> dict:
        return {"history": None if self.history is None else self.history.detach().cpu()}

    def load(self, state: dict) -> None:
        h = state.get("history")
        if h is not None:
            device = self.history.device if self.history is not None else h.device
            self.history = h.to(device)


# --- OGM-GE / PMR ---------------------------------------------------------------------------
def discrepancy_ratios(scores: torch.Tensor) -> torch.Tensor:
    """rho_m = s_m / mean of the other modalities' s (= s_a / s_v for two); [M] -> [M]."""
    m = scores.shape[0]
    others = (scores.sum() - scores) / (m - 1)
    return scores / others.clamp_min(torch.finfo(scores.dtype).tiny)
