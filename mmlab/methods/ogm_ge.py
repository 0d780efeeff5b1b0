"""OGM-GE: On-the-fly Gradient Modulation with Generalization Enhancement.

Peng, Wei, Deng, Wang, Hu. "Balanced Multimodal Learning via On-the-fly Gradient
Modulation", CVPR 2022 (arXiv 2203.15332). Joint training (default fusion "concat";
`fusion=` overrides it, e.g. fusion="mmtm" for the "OGM-GE + MMTM" rows).

Per batch B_t, with per-modality logits z^u (for a concat head with a linear layer these
are the sliced-weight logits W[:, slice_u] f^u + b/M, `ModelOutput.per_modality`):

  s^u     = sum_{i in B_t} softmax(z^u_i)[y_i]                 (the modality's score)
  rho^a   = s^a / s^v,  rho^v = 1 / rho^a                      (discrepancy ratio)
  k^u     = 1 - tanh(alpha * rho^u)  if rho^u > 1, else 1       (Eq. 10, coeff="paper")
  theta^u <- theta^u - lr * (k^u g(theta^u) + h(theta^u)),     (modulated SGD step with
             h ~ N(0, Sigma_sgd(theta^u))                        GE noise h)

(Eq. 10 is numbered as the authors' code comment quotes it; the other lines are the
equations around it in the paper's OGM and GE sections, Sec. 3.)

So only the dominant modality (rho > 1) is slowed; GE adds Gaussian noise to restore
the gradient's stochasticity (the paper argues it improves generalisation). We apply
k^u and the noise to every parameter of modality u's ENCODER (trainer.model.encoders[u])
in `on_after_backward`, i.e. between backward and the optimizer step; the fusion/head
gradients are untouched, as in the paper.

Note the paper's k jumps from 1 to 1 - tanh(alpha) at rho = 1 (0.34 for alpha = 0.8).
coeff="code" uses k^u = 1 - tanh(alpha * relu(rho^u - 1)) instead, which is continuous
(k = 1 at rho = 1, falling smoothly): the form of the authors' first public main.py
(March 2022); their later main.py reverted to the paper's Eq. 10.

More than two modalities (our generalisation, not in the paper): rho^u = s^u / mean of
the other modalities' s; with M = 2 this is exactly s^a / s^v.

Hyperparameters (paper / authors' code defaults):
  alpha             0.8    (CREMA-D; 0.1 for VGGSound) - strength of the modulation
  coeff             "paper" (Eq. 10) | "code" (1 - tanh(alpha * relu(rho - 1)))
  ge                True: add N(0, std(grad)^2) noise (OGM-GE); False: OGM only
  modulation_start  0      first epoch modulated (inclusive)
  modulation_end    None   last epoch modulated (inclusive; the code's default is 50);
                           None = every epoch. Outside [start, end]: plain joint training.

Where we differ from the authors' code:
- The code modulates only 4-D parameters (conv kernels) of the encoders; biases,
  BatchNorm and linear layers are left alone. We scale every encoder parameter (our
  encoders include MLPs, which have no conv kernels).
- The paper's GE noise has the SGD noise covariance Sigma_sgd; the code (and we) use an
  isotropic N(0, std(g)^2) per parameter tensor instead.
- GE in the code draws N(0, (std(g) + 1e-8)^2) with std(g) the unbiased std of the
  UNMODULATED gradient tensor (the older code used the modulated one). We use the
  unbiased std of the unmodulated gradient without the 1e-8 (a zero gradient gets no
  noise); one-element tensors get no noise (their std is undefined).
- The code computes s^u with a Python loop over samples and pulls std with .item()
  per parameter (a host sync each); we gather the label column and stay on the device.
- Noise is drawn from torch's global RNG, which the Trainer seeds per epoch, so a run
  (and a resumed run) is deterministic.
- Per-modality logits use bias/M (bias/2 for two modalities, as the code does).
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F

from mmlab.methods.base import Method, register
from mmlab.methods.combine import discrepancy_ratios
from mmlab.methods.common import as_bool

COEFFS = ("paper", "code")


def modality_scores(per_modality: List[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    """s_m = sum over the batch of softmax(z_m)[y] (OGM-GE Eq. 8), on detached float logits.

    per_modality: M tensors [B, C]; y: [B] -> [M]."""
    z = torch.stack([t.detach().float() for t in per_modality])      # [M, B, C]
    p = F.softmax(z, dim=2)
    idx = y.view(1, -1, 1).expand(z.shape[0], -1, 1)                  # [M, B, 1]
    return p.gather(2, idx).squeeze(2).sum(1)                         # [M]


def modulation_coefficients(ratios: torch.Tensor, alpha: float, coeff: str = "paper") -> torch.Tensor:
    """k_m from rho_m: paper Eq. 10 (1 - tanh(alpha rho) if rho > 1 else 1) or the
    continuous code form 1 - tanh(alpha relu(rho - 1)); [M] -> [M]."""
    if coeff == "paper":
        return torch.where(ratios > 1, 1 - torch.tanh(alpha * ratios), torch.ones_like(ratios))
    return 1 - torch.tanh(alpha * torch.relu(ratios - 1))


def gradient_stds(grads: List[torch.Tensor]) -> torch.Tensor:
    """Unbiased std of each gradient tensor, [T] (0 for one-element tensors, where it is
    undefined), from one fused norm and T sums: var = (sum g^2 - (sum g)^2 / n) / (n - 1)."""
    n = torch.tensor([g.numel() for g in grads], dtype=torch.float32, device=grads[0].device)
    sq = torch.stack(torch._foreach_norm(grads)).float().square()     # [T] sum g^2
    s = torch.stack([g.sum() for g in grads]).float()                 # [T] sum g
    var = ((sq - s * s / n) / (n - 1).clamp_min(1)).clamp_min(0)
    return torch.where(n > 1, var.sqrt(), torch.zeros_like(var))


def add_gaussian_noise(grads: List[torch.Tensor], stds: torch.Tensor) -> None:
    """In place g += N(0, std^2) per tensor, from ONE draw of torch's global RNG (the
    Trainer seeds it per epoch, so runs and resumed runs are reproducible)."""
    numels = [g.numel() for g in grads]
    flat = torch.randn(sum(numels), dtype=grads[0].dtype, device=grads[0].device)
    noise = [c.view_as(g) for c, g in zip(flat.split(numels), grads)]
    torch._foreach_addcmul_(grads, noise, list(stds.to(grads[0].dtype).unbind()))


@register("ogm_ge")
class OGMGE(Method):
    fusion = "concat"
    description = ("OGM-GE: dominant modality's encoder gradients scaled by 1 - tanh(alpha rho), "
                   "plus Gaussian noise")

    def __init__(self, info, train_cfg, alpha: float = 0.8, coeff: str = "paper", ge: bool = True,
                 modulation_start: int = 0, modulation_end: int | None = None, **kw):
        super().__init__(info, train_cfg, **kw)
        if coeff not in COEFFS:
            raise ValueError(f"ogm_ge: coeff must be one of {COEFFS} ('paper' = Eq. 10, "
                             f"'code' = 1 - tanh(alpha*relu(rho-1))), got {coeff!r}")
        if alpha < 0:
            raise ValueError(f"ogm_ge: alpha must be >= 0 (0.8 for CREMA-D, 0.1 for VGGSound), got {alpha}")
        if modulation_end is not None and modulation_end < modulation_start:
            raise ValueError(f"ogm_ge: modulation_end ({modulation_end}) is before modulation_start "
                             f"({modulation_start}); use None to modulate until the last epoch")
        if len(self.modalities) < 2:
            raise ValueError(f"ogm_ge needs at least two modalities, got {self.modalities}; "
                             f"pass modalities=[...] with two or more of {info.modality_names}")
        self.alpha, self.coeff, self.ge = float(alpha), coeff, as_bool("ge", ge)
        self.modulation_start, self.modulation_end = int(modulation_start), modulation_end
        self.epoch = 0
        self.last_scores: torch.Tensor | None = None     # [M] s_m of the last batch
        self.last_coeffs: torch.Tensor | None = None     # [M] k_m of the last batch (self.modalities order)

    def modulating(self, epoch: int) -> bool:
        return self.modulation_start <= epoch and (self.modulation_end is None or epoch <= self.modulation_end)

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self.epoch = epoch

    def training_step(self, trainer, batch: dict) -> None:
        with trainer.autocast():
            out = trainer.model(batch)
            loss = self.loss(out, batch)
        if self.modulating(self.epoch):   # k_m from this batch, read by on_after_backward (no host sync)
            self.update_coefficients([out.per_modality[m] for m in self.modalities], batch["label"])
        trainer.optimize(loss, self.optimizers["main"])
        trainer.log_batch(out, batch, loss)

    def update_coefficients(self, per_modality: List[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        """s_m, rho_m, k_m for one batch; kept in last_scores / last_coeffs ([M] tensors)."""
        self.last_scores = modality_scores(per_modality, y)
        self.last_coeffs = modulation_coefficients(discrepancy_ratios(self.last_scores), self.alpha, self.coeff)
        return self.last_coeffs

    def on_after_backward(self, trainer, optimizer) -> None:
        """g_u <- k_u g_u for every encoder parameter of modality u, then (GE) + N(0, std(g_u)^2)
        with the std of the unmodulated gradient, per parameter tensor."""
        if self.last_coeffs is None or not self.modulating(self.epoch):
            return
        per_mod = [[p.grad for p in trainer.model.encoders[m].parameters() if p.grad is not None]
                   for m in self.modalities]
        grads = [g for gs in per_mod for g in gs]
        if not grads:
            return
        stds = gradient_stds(grads) if self.ge else None    # before modulation, as the code does
        for k, gs in zip(self.last_coeffs.to(grads[0].dtype), per_mod):
            if gs:
                torch._foreach_mul_(gs, k)
        if self.ge:
            add_gaussian_noise(grads, stds)
