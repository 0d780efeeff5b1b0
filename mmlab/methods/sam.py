"""Sharpness-aware minimisation (Foret et al., ICLR 2021) as a training step of the Trainer's
split API, shared by the methods that use it (MIE). Registers no method.

    sam_step(trainer, optimizer, params, loss_fn, rho)

1. loss = loss_fn(); backward (AMP-scaled gradients);
2. g = the unscaled gradient of `params`; eps = rho g / ||g||_2 (p = 2: SAM's Eq. 2 / MIE's Eq. 3);
3. the weights are moved to theta + eps; the gradients zeroed; loss_fn() again and backward:
   the SAM gradient is the gradient at theta + eps (MIE Eq. 4). BatchNorm layers do not update
   their running statistics in this second pass (momentum 0), so they move once per step;
4. the weights are restored exactly (copied back, not subtracted) and the trainer steps with
   the SAM gradient (on_after_backward may edit it first: MIE's gradient modification).
rho = 0, or a zero / non-finite first gradient (an AMP overflow: the step is then skipped by the
scaler), gives a plain step. When theta + eps equals theta bit for bit (rho below the float
resolution of every weight, as MIE's stated 1e-10) and the model has no active dropout, the
second pass would recompute the very gradient the first gave: it is skipped (the same step, at
half the cost). Returns the first loss (at theta).
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def bn_frozen(model: nn.Module):
    """BatchNorm running statistics left as they are inside the block (momentum 0)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom


def stochastic(model: nn.Module) -> bool:
    """Does a forward pass of model draw random numbers (dropout in training mode)?"""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.training and m.p > 0 for m in model.modules())


def sam_step(trainer, optimizer, params, loss_fn, rho: float) -> torch.Tensor:
    params = [p for p in params if p.requires_grad]
    with trainer.autocast():
        loss = loss_fn()
    trainer.backward(loss, optimizer)
    if rho > 0:
        grads = trainer.unscaled_grads(params)
        norm = torch.sqrt(sum((g ** 2).sum() for g in grads if g is not None))
        if torch.isfinite(norm) and norm > 0:
            saved = [p.detach().clone() for p in params]
            with torch.no_grad():
                for p, g in zip(params, grads):
                    if g is not None:
                        p.add_(g.to(p.dtype), alpha=float(rho / norm))
            if not stochastic(trainer.model) and all(torch.equal(p, s) for p, s in zip(params, saved)):
                trainer.step_optimizer(optimizer)          # theta + eps == theta: the gradient is the one we have
                return loss.detach()
            optimizer.zero_grad(set_to_none=True)
            with trainer.autocast(), bn_frozen(trainer.model):
                perturbed = loss_fn()
            trainer.backward(perturbed, optimizer, zero_grad=False)
            with torch.no_grad():
                for p, s in zip(params, saved):
                    p.copy_(s)
    trainer.step_optimizer(optimizer)
    return loss.detach()
