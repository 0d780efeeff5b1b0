"""MLA: Multimodal Learning with Alternating Unimodal Adaptation (Zhang, Latham, Yao; CVPR 2024).

Training (mmlab.methods.alternating): each modality's encoder h_m and ONE shared linear head
g; per batch one step per modality on CE(g(h_m(x_m)), y) (Eq. 1-2). Before the shared head's
step on modality m_t, the projector P (s x s, s the feature width; P_0 = I) is updated by
recursive least squares with the batch-mean feature r = mean_i h_{m_t}(x_i) (Eq. 3):

    q_t = P_{t-1} r / (alpha + r^T P_{t-1} r),     P_t = P_{t-1} - q_t r^T P_{t-1}

and the head's weight gradient G [C, s] is replaced by G P_t (Eq. 4: phi_t = phi_{t-1} -
gamma P_t grad; P is symmetric, so G P_t^T = G P_t). The update direction of the head is then
(nearly) orthogonal to the mean features it has seen, so a step on one modality leaves the
head's outputs on the other modalities' earlier mean features (nearly) unchanged.
Test time: per-sample entropy-weighted sum of the modalities' logits (Eq. 5-7;
alternating.fuse).

Choices where the paper is open, and deviations (each an option):
- Eq. 3 as printed computes q_t with P_t on its right-hand side; P_{t-1} is meant (RLS, and
  the authors' code): we use P_{t-1}.
- Order: Algorithm 1 updates P with the current modality's features, then steps the head
  with the new P (lines 5-6), as the authors' code does; so do we.
- alpha: a constant (the paper: "a predefined hyperparameter"), 0.1 by default;
  `alpha_schedule="code"` uses the code's alpha = 0.1^(1 + i / n) for batch i of n, restarting
  every epoch. `normalize_p=True` rescales P to unit Frobenius norm after each update (code).
- P acts on the shared head's weight only (the code's `fc_out.weight`): the bias gradient is
  left as is, so "unchanged outputs" holds for the weight's part W r.
- `projection`: "replace" (the paper: G <- G P), "never" (the authors' released code: P is
  computed but its parameter-name check never matches, so the gradient is never modified; also
  the "w/o HGM" ablation), "add" (a popular toolkit: G <- G + G P).
- `fusion_rule="mean"` (equal weights: "w/o DF"), `fusion_scope="batch"` (the code: one weight
  per modality for the whole batch instead of per sample).
- One optimizer over every parameter (the code); each step moves only the stepping modality's
  encoder and the head (the other encoders have no gradient). P persists across epochs and is
  saved with the method state (exact resume); it is not needed at test time.

Hyperparameters of the paper (A.3): SGD, lr 1e-3, momentum 0.9, batch 64, lr x0.1 at regular
intervals (StepLR(70, 0.1) over 100 epochs in the code); weight decay 1e-4 in the code.
"""
from __future__ import annotations

import torch

from mmlab.methods.alternating import AlternatingMethod
from mmlab.methods.base import register
from mmlab.methods.common import as_bool, check_choice

PROJECTIONS = ("replace", "never", "add")
ALPHA_SCHEDULES = ("constant", "code")


@register("mla")
class MLA(AlternatingMethod):
    description = "MLA: alternating unimodal steps through a shared head with projected head gradients"

    def __init__(self, info, train_cfg, projection: str = "replace", alpha: float = 0.1,
                 alpha_schedule: str = "constant", normalize_p: bool = False, **kw):
        super().__init__(info, train_cfg, **kw)
        check_choice("mla", "projection", projection, PROJECTIONS)
        check_choice("mla", "alpha_schedule", alpha_schedule, ALPHA_SCHEDULES)
        if not (isinstance(alpha, (int, float)) and alpha > 0):
            raise ValueError(f"mla option alpha must be a number > 0 (RLS regulariser), got {alpha!r}")
        self.projection, self.alpha, self.alpha_schedule = projection, float(alpha), alpha_schedule
        self.normalize_p = as_bool("normalize_p", normalize_p)
        self.P = None                                    # [s, s], float32, on the model's device

    def on_fit_start(self, trainer) -> None:
        super().on_fit_start(trainer)
        s = trainer.model.fusion.head.in_features
        self.P = torch.eye(s, device=trainer.device)

    def alpha_at(self, i: int, n_batches: int) -> float:
        if self.alpha_schedule == "code":
            return 0.1 ** (1 + i / max(n_batches, 1))
        return self.alpha

    @torch.no_grad()
    def update_projector(self, r: torch.Tensor, alpha: float) -> None:
        """Eq. 3 with the mean feature r [s]: P <- P - (P r)(P r)^T / (alpha + r^T P r)."""
        k = self.P @ r                                                   # [s]
        self.P -= torch.outer(k, k) / (alpha + r @ k)
        if self.normalize_p:
            self.P /= self.P.norm()

    def modality_step(self, trainer, batch: dict, m: str, i: int, n_batches: int):
        out = self.modality_loss(trainer, batch, m)
        if out is None:
            return None
        z, loss, f = out
        self.update_projector(f.detach().float().mean(0), self.alpha_at(i, n_batches))
        self.stepping = m
        try:
            trainer.optimize(loss, self.optimizers["main"])
        finally:
            self.stepping = None
        return z.detach(), loss.detach()

    def on_after_backward(self, trainer, optimizer) -> None:
        if self.stepping is None or self.projection == "never":
            return
        g = trainer.model.fusion.head.weight.grad                        # [C, s]
        if g is None:
            return
        gp = g.float() @ self.P                                          # G P (P symmetric)
        g.copy_(gp if self.projection == "replace" else g.float() + gp)

    def extra_state(self) -> dict:
        return {"P": None if self.P is None else self.P.detach().cpu()}

    def load_extra_state(self, state: dict) -> None:
        if state.get("P") is not None:
            self.P = state["P"].to(self.P.device if self.P is not None else "cpu")
