"""PMR: Prototypical Modal Rebalance.

Fan, Xu, Wang, Wang, Guo. "PMR: Prototypical Modal Rebalance for Multimodal Learning",
CVPR 2023 (arXiv 2211.07089). Joint training (default fusion "concat"; `fusion=`
overrides it). PMR only reads each modality's encoder features f^m = phi^m(x^m), so it
works with any fusion.

Before every epoch (on_epoch_start), one pass over the training set in eval mode gives
class prototypes per modality (the class means of the encoder features):

  c^m_k   = mean of f^m(x_i) over training samples with y_i = k          (prototypes)
  p^m_k(x) = softmax_k(-d(f^m(x), c^m_k)),  d Euclidean (authors' code) (prototype classifier)
  L_PCE^m = -(1/B) sum_i log p^m_{y_i}(x_i)                              (prototypical CE)
  L_PER^m = (1/B) sum_i H(p^m(x_i)),  H = -sum_k p_k log p_k             (prototype entropy)

Per batch, the prototype scores decide which modality is slow:

  s^m     = sum_i p^m_{y_i}(x_i),   rho^m = s^m / s^{other}              (imbalance ratio)
  beta^m  = alpha * clip(1/rho^m - 1, 0, 1)   (> 0 only for the slow modality: PCE weight)
  gamma^m = mu    * clip(rho^m - 1,   0, 1)   (> 0 only for the dominant one: PER weight)
  L = CE(fused logits, y) + sum_m beta^m L_PCE^m - sum_m gamma^m L_PER^m

The PCE term pulls the slow modality's features towards its class prototypes (a
gradient that does not pass through the fused head the dominant modality controls);
the PER term, applied only in the first `entropy_epochs` epochs ("the early training
stage"), MAXIMISES the dominant modality's prototype entropy (hence the minus sign) to
keep it from converging prematurely. Scores and coefficients are computed on detached
features (constants in the backward pass). With two modalities, beta of the slow one is
alpha * clip(rho_dominant - 1, 0, 1). The [0, 1] clip of (rho - 1) is the form of the
BalanceMM re-implementation (GeWu-Lab/BalanceBenchmark); the paper's equation text was
not available to us while writing this, so treat that clip (and mu, entropy_epochs) as
our reading, not a quotation.

More than two modalities (our generalisation): rho^m = s^m / mean of the other
modalities' s; every modality with rho < 1 gets PCE, every one with rho > 1 gets PER.

Hyperparameters (defaults):
  alpha           2.0    PCE weight scale (the code's default is 1.0; 2.0 per our notes)
  mu              0.01   PER weight scale (our default; the authors' code has no PER)
  entropy         True   include the PER term (the paper); False = the authors' code
  entropy_epochs  10     PER only in epochs < entropy_epochs ("early training stage")
  coeff           "paper": beta/gamma scale with rho as above;
                  "code": beta = alpha for the slow modality (rho < 1), 0 otherwise
                  (the authors' main_Prototype_grad.py), gamma = mu likewise
  momentum        0.0    prototypes c <- (1 - momentum) c_new + momentum c_old
                         (the code uses 0.2 after the first epoch; 0 = recomputed each epoch)
  proto_subset    1.0    fraction of the training set used for prototypes (seeded per epoch)
  distance        "euclidean" (-||f - c||, the authors' code) | "squared" (-||f - c||^2)
  modulation_start / modulation_end   epochs with the PMR terms (inclusive; None = all)

Where we differ from the authors' code:
- The code has no prototype entropy term (PER); entropy=False reproduces that.
- The code's PCE weight is the constant alpha for the slow modality (coeff="code"),
  not a function of rho.
- The code computes prototypes from the first 10% of shuffled training batches (and on
  the validation/test set for AVE and CG-MNIST), after each epoch, with a python loop
  per sample; we use the whole training set (proto_subset=1.0) or a seeded random
  fraction, vectorised (index_add_), before each epoch, never the test set.
- The code's distances are a double python loop; we use torch.cdist.
- Scores, ratios and coefficients stay on the device (no per-step .item()).
Prototypes live in method state (extra_state) for exact resume; predict() does not
use them (test-time prediction is the fused head, as in the paper).
"""
from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn.functional as F

from mmlab.methods.base import Method, register
from mmlab.methods.combine import discrepancy_ratios
from mmlab.methods.common import as_bool

COEFFS = ("paper", "code")
DISTANCES = ("euclidean", "squared")


def prototype_logits(feats: torch.Tensor, protos: torch.Tensor, distance: str = "euclidean") -> torch.Tensor:
    """-d(f, c_k): feats [B, D], protos [C, D] -> [B, C] (float32)."""
    d = torch.cdist(feats.float(), protos.float())                     # [B, C] Euclidean
    return -(d * d) if distance == "squared" else -d


def rebalance_coefficients(ratios: torch.Tensor, alpha: float, mu: float, coeff: str = "paper"):
    """(beta, gamma), [M] each: PCE weights for slow modalities (rho < 1), PER weights for
    dominant ones (rho > 1)."""
    if coeff == "code":
        return alpha * (ratios < 1).float(), mu * (ratios > 1).float()
    slow = (1 / ratios.clamp_min(torch.finfo(ratios.dtype).tiny) - 1).clamp(0, 1)
    return alpha * slow, mu * (ratios - 1).clamp(0, 1)


def prototype_terms(logits: torch.Tensor, y: torch.Tensor):
    """From stacked prototype logits [M, B, C] and labels [B], per modality ([M] each):
    s_m = sum_i p_m[i, y_i] (detached), PCE_m = mean_i -log p_m[i, y_i], and the mean
    prototype entropy H_m = mean_i -sum_k p_m[i, k] log p_m[i, k]. One log-softmax for all."""
    logp = F.log_softmax(logits, dim=2)                                        # [M, B, C]
    logp_y = logp.gather(2, y.view(1, -1, 1).expand(logits.shape[0], -1, 1)).squeeze(2)   # [M, B]
    scores = logp_y.detach().exp().sum(1)
    entropy = -(logp.exp() * logp).sum(2).mean(1)
    return scores, -logp_y.mean(1), entropy


@torch.no_grad()
def class_means(model, loader, num_classes: int, modalities) -> tuple:
    """Per-class means of encoder features over `loader` (model as it is: call eval()).

    Returns ({m: [C, D_m] means (0 for classes not seen)}, counts [C])."""
    sums: Dict[str, torch.Tensor] = {}
    counts = None
    for batch in loader:
        feats = model.encode(batch, modalities)
        y = batch["label"]
        if counts is None:
            counts = torch.zeros(num_classes, device=y.device)
            sums = {m: torch.zeros(num_classes, f.shape[1], device=f.device) for m, f in feats.items()}
        counts.index_add_(0, y, torch.ones_like(y, dtype=counts.dtype))
        for m, f in feats.items():
            sums[m].index_add_(0, y, f.float())                       # [C, D] per-class sums
    return {m: s / counts.clamp_min(1).unsqueeze(1) for m, s in sums.items()}, counts


@register("pmr")
class PMR(Method):
    fusion = "concat"
    description = ("PMR: prototypical CE for the slow modality, prototype-entropy regulariser "
                   "for the dominant one")

    def __init__(self, info, train_cfg, alpha: float = 2.0, mu: float = 0.01, entropy: bool = True,
                 entropy_epochs: int = 10, coeff: str = "paper", momentum: float = 0.0,
                 proto_subset: float = 1.0, distance: str = "euclidean", modulation_start: int = 0,
                 modulation_end: int | None = None, **kw):
        super().__init__(info, train_cfg, **kw)
        self._check(alpha, mu, coeff, momentum, proto_subset, distance, modulation_start, modulation_end)
        self.alpha, self.mu, self.coeff, self.distance = float(alpha), float(mu), coeff, distance
        self.entropy, self.entropy_epochs = as_bool("entropy", entropy), int(entropy_epochs)
        self.momentum, self.proto_subset = float(momentum), float(proto_subset)
        self.modulation_start, self.modulation_end = int(modulation_start), modulation_end
        self.epoch = 0
        self.protos: Dict[str, torch.Tensor] = {}          # modality -> [C, D_m]
        self.last_coeffs: Dict[str, torch.Tensor] = {}     # "scores", "ratios", "beta", "gamma": [M]

    def _check(self, alpha, mu, coeff, momentum, proto_subset, distance, start, end) -> None:
        if coeff not in COEFFS:
            raise ValueError(f"pmr: coeff must be one of {COEFFS} ('paper' scales with the ratio, "
                             f"'code' = constant alpha as in the authors' code), got {coeff!r}")
        if distance not in DISTANCES:
            raise ValueError(f"pmr: distance must be one of {DISTANCES}, got {distance!r}")
        if alpha < 0 or mu < 0:
            raise ValueError(f"pmr: alpha and mu must be >= 0, got alpha={alpha}, mu={mu}")
        if not 0 <= momentum < 1:
            raise ValueError(f"pmr: momentum must be in [0, 1) (0 = prototypes recomputed each epoch), "
                             f"got {momentum}")
        if not 0 < proto_subset <= 1:
            raise ValueError(f"pmr: proto_subset is a fraction of the training set in (0, 1], got {proto_subset}")
        if end is not None and end < start:
            raise ValueError(f"pmr: modulation_end ({end}) is before modulation_start ({start}); "
                             f"use None to modulate until the last epoch")
        if len(self.modalities) < 2:
            raise ValueError(f"pmr needs at least two modalities, got {self.modalities}; pass "
                             f"modalities=[...] with two or more of {self.info.modality_names}")

    def modulating(self, epoch: int) -> bool:
        return self.modulation_start <= epoch and (self.modulation_end is None or epoch <= self.modulation_end)

    # --- prototypes -----------------------------------------------------------------------
    def on_epoch_start(self, trainer, epoch: int) -> None:
        self.epoch = epoch
        if self.modulating(epoch):
            self.update_prototypes(trainer, epoch)

    def prototype_data(self, trainer, epoch: int):
        """The training set, or a random `proto_subset` fraction of it drawn from a generator
        seeded by (seed, epoch): the global RNG stream of training is left untouched."""
        data = trainer.splits.train
        if self.proto_subset >= 1:
            return data
        g = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        n = max(1, math.ceil(self.proto_subset * len(data)))
        return data.subset(torch.randperm(len(data), generator=g)[:n].sort().values)

    def update_prototypes(self, trainer, epoch: int) -> None:
        """One eval-mode pass: class means of encoder features; classes absent from the pass
        keep their previous prototype; optional momentum with the previous prototypes."""
        model = trainer.model
        model.eval()
        with trainer.autocast():
            loader = trainer.loader(self.prototype_data(trainer, epoch), train=False)
            means, counts = class_means(model, loader, self.info.num_classes, self.modalities)
        model.train()
        seen = (counts > 0).unsqueeze(1)                                 # [C, 1]
        for m, new in means.items():
            old = self.protos.get(m)
            if old is not None:
                new = torch.where(seen, (1 - self.momentum) * new + self.momentum * old, old)
            self.protos[m] = new

    # --- loss ------------------------------------------------------------------------------
    def loss(self, out, batch: dict) -> torch.Tensor:
        ce = F.cross_entropy(out.logits, batch["label"])
        if not self.protos or not self.modulating(self.epoch):
            return ce
        return ce + self.rebalance_terms(out.features, batch["label"])

    def rebalance_terms(self, feats: Dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        """sum_m beta_m PCE_m - sum_m gamma_m PER_m for one batch (coefficients detached)."""
        z = torch.stack([prototype_logits(feats[m], self.protos[m], self.distance)
                         for m in self.modalities])                                  # [M, B, C]
        scores, pce, entropy = prototype_terms(z, y)                                  # [M] each
        ratios = discrepancy_ratios(scores)          # rho_m = s_m / mean of the others' s
        beta, gamma = rebalance_coefficients(ratios, self.alpha, self.mu, self.coeff)
        self.last_coeffs = {"scores": scores, "ratios": ratios, "beta": beta, "gamma": gamma}
        extra = (beta * pce).sum()
        if self.entropy and self.epoch < self.entropy_epochs:
            extra = extra - (gamma * entropy).sum()     # minus: the dominant modality's entropy is raised
        return extra

    # --- state -----------------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {"protos": {m: p.detach().cpu() for m, p in self.protos.items()}}

    def load_extra_state(self, state: dict) -> None:
        self.protos = dict(state.get("protos", {}))
