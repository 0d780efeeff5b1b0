"""QMF: Quality-aware Multimodal Fusion (Zhang et al., ICML 2023, "Provable Dynamic Fusion
for Low-Quality Multimodal Data", arXiv 2306.02050).

Decision-level dynamic fusion: each modality m has its own encoder and head (logits z_m,
[B, C]); the fused logits are a per-sample weighted sum whose weights fall as the
modality's uncertainty rises. QMF measures uncertainty with the energy score
  E_m(x) = -T * log sum_k exp(z_mk / T)          (T: temperature, 1 in the authors' code)
(low energy = confident) and uses the confidence
  c_m(x) = -scale * E_m(x) = scale * T * logsumexp(z_m / T)      (scale = 1/10 in the code)
  weighting="softmax" (default): w_m = softmax over modalities of c_m   -> sums to 1
  weighting="code":              w_m = c_m, unnormalised (the authors' released code)
  fused = sum_m w_m.detach() * z_m        (weights detached, as in the authors' code)
The paper only asks the weight to be a decreasing function of the modality's
uncertainty; we normalise it so the fused logits keep one modality's scale and a weight
can never turn negative (c_m < 0 happens when every logit is negative, and would flip
that modality's vote with weighting="code").

Training loss = CE(fused, y) + sum_m CE(z_m, y) + lam * sum_m L_rank,m.
L_rank (sample-wise regulariser): QMF ties the confidence to each sample's training
history, a per-sample, per-modality running sum of past CE losses h_m[i] over the whole
training set (kept in method state, addressed by batch["index"]), min-max normalised to
[0, 1] over the training set. Each sample i of a batch is paired with the next one
(j = i+1, cyclic); with g = sign(h_i - h_j) (+1: i has been harder) and gap = |h_i - h_j|:
  rank_margin="enforce" (default): max(0, g (c_i - c_j) + gap)   the harder sample must be at
                                    least `gap` less confident (the CRL ranking loss of Moon
                                    et al. 2020, which QMF's regulariser adapts)
  rank_margin="code":              max(0, g (c_i - c_j) - gap)   the authors' scripts: the
                                    margin enters with the opposite sign, so it is a slack
averaged over the batch. The confidence is NOT detached here: this term trains the heads
and encoders so that the energy ranks samples as their loss history does.

Hyperparameters: lam = 0.1 (the authors' RGB-D scripts; their text-image script adds the
term with weight 1), temperature T = 1, scale = 0.1, weighting "softmax", rank_margin
"enforce". Optimiser and lr come from the run's TrainConfig.

Where we differ from the authors' code:
- weights: softmax-normalised confidences by default (theirs: c_m = logsumexp(z_m)/10 used
  as is; `weighting="code"` reproduces it, identical argmax whenever all c_m > 0);
- ranking margin sign: see rank_margin above (`rank_margin="code"` gives theirs);
- the history is updated with the current batch's losses before the ranking targets are
  read, as in their text-image script (their RGB-D script updates after, which leaves the
  whole first epoch without a ranking signal); a constant history (all zero) gives zero
  ranking loss instead of their 0/0;
- their heads sit on pretrained backbones with gradient accumulation; ours are one linear
  head per modality on our encoders (the "sum" model structure: QMF and "sum" runs with
  the same seed start from identical weights).
"""
from __future__ import annotations

from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor

from mmlab.methods.base import Method, register
from mmlab.methods.tmc import swap_fusion
from mmlab.models import build_model
from mmlab.models.fusion import SumFusion

WEIGHTINGS = ("softmax", "code")
RANK_MARGINS = ("enforce", "code")


def _check_options(temperature: float, weighting: str = "softmax") -> None:
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
    _check_options(temperature)
    return torch.stack([-scale * energy(z, temperature) for z in logits.values()], dim=1)


def qmf_weights(logits: Dict[str, Tensor], temperature: float = 1.0, scale: float = 0.1,
                weighting: str = "softmax") -> Tensor:
    """Modality weights [B, M] (columns in dict order): softmax over modalities of the
    confidence -scale * E (sums to 1 per sample), or the raw confidence (weighting="code")."""
    _check_options(temperature, weighting)
    conf = qmf_confidence(logits, temperature, scale)
    return conf.softmax(dim=1) if weighting == "softmax" else conf


def qmf_combine(logits: Dict[str, Tensor], temperature: float = 1.0, scale: float = 0.1,
                weighting: str = "softmax") -> Tensor:
    """Fused logits [B, C] = sum_m w_m z_m with detached weights w = qmf_weights(logits)."""
    w = qmf_weights(logits, temperature, scale, weighting).detach()        # [B, M]
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


class QMFFusion(SumFusion):
    """One linear head per modality (as "sum"); fused logits = qmf_combine(per-modality)."""

    def __init__(self, dims, num_classes, head: str = "linear", temperature: float = 1.0,
                 scale: float = 0.1, weighting: str = "softmax"):
        super().__init__(dims, num_classes, head=head)
        self.temperature, self.scale, self.weighting = temperature, scale, weighting

    def forward(self, feats):
        return qmf_combine(self.per_modality(feats), self.temperature, self.scale, self.weighting)


class QMFObjective:
    """QMF's training objective with its per-sample loss history (state), shared by the QMF
    method and ReconBoost's `final="qmf"` rectification stage:
        L = CE(fused, y) + sum_m CE(z_m, y) + lam * sum_m L_rank,m
    `history` [M, N_train] holds each training sample's summed past CE per modality."""

    def __init__(self, modalities, lam: float = 0.1, temperature: float = 1.0, scale: float = 0.1,
                 rank_margin: str = "enforce"):
        _check_options(temperature)
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


@register("qmf")
class QMF(Method):
    fusion = "qmf"
    description = "QMF: energy-weighted late fusion with a loss-history ranking regulariser"

    def __init__(self, info, train_cfg, lam: float = 0.1, temperature: float = 1.0, scale: float = 0.1,
                 weighting: str = "softmax", rank_margin: str = "enforce", **kw):
        if kw.get("fusion") not in (None, "qmf"):
            raise ValueError(f"method 'qmf' fuses per-modality heads by energy weights; it takes no "
                             f"fusion={kw['fusion']!r} (drop the option)")
        kw.pop("fusion", None)
        super().__init__(info, train_cfg, **kw)
        if len(self.modalities) < 2:
            raise ValueError(f"method 'qmf' needs at least two modalities, got {self.modalities}")
        _check_options(temperature, weighting)
        self.objective = QMFObjective(self.modalities, lam, temperature, scale, rank_margin)
        self.temperature, self.scale, self.weighting = temperature, scale, weighting

    @property
    def history(self) -> Tensor | None:
        """[M, N_train] summed past CE losses (the objective's state)."""
        return self.objective.history

    def normalised_history(self, k: int, idx: Tensor) -> Tensor:
        return self.objective.normalised_history(k, idx)

    def build_model(self):
        model = build_model(self.info, fusion="sum", modalities=self.modalities, **self.model_kwargs)
        return swap_fusion(model, QMFFusion, head=self.model_kwargs["head"], temperature=self.temperature,
                           scale=self.scale, weighting=self.weighting)

    def on_fit_start(self, trainer) -> None:
        super().on_fit_start(trainer)
        self.objective.start(len(trainer.splits.train), trainer.device)

    def training_step(self, trainer, batch: dict) -> None:
        with trainer.autocast():
            out = trainer.model(batch)
            self.objective.update_history(out.per_modality, batch["label"], batch["index"])
            loss = self.loss(out, batch)
        trainer.optimize(loss, self.optimizers["main"])
        trainer.log_batch(out, batch, loss)

    def loss(self, out, batch):
        return self.objective(out.logits, out.per_modality, batch["label"], batch["index"])

    def extra_state(self) -> dict:
        return self.objective.state()

    def load_extra_state(self, state: dict) -> None:
        self.objective.load(state)
