"""Gradient-Blending (G-Blend; Wang, Tran & Feiszli, CVPR 2020, "What makes training
multi-modal classification networks hard?", arXiv 1905.12681).

Model: the encoders, a fused head (fusion "concat" by default, `fusion=` overrides it) and
one extra linear head per modality on that modality's features. Loss (the blended loss of
the paper's Sec. 3.3):

    L = w_fused * CE(fused logits, y) + sum_m w_m * CE(head_m(f_m), y)

Weights from the overfitting-to-generalisation behaviour of each head k (Sec. 3.2-3.3):
losses L^T (train) and L^V (a HOLDOUT carved from train, the paper's stand-in for the
true loss L*) measured at two checkpoints, "prev" and "now":

    O_k = (L^V_now - L^T_now) - (L^V_prev - L^T_prev)      overfitting change  (Delta O)
    G_k =  L^V_prev - L^V_now                              generalisation gain (Delta G)
    w_k = |G_k / O_k^2| / Z,  Z = sum_k |G_k / O_k^2|      (Proposition 1's estimate,
                                                            normalised to sum 1)

`blend_weights` is that formula; O_k^2 is floored at `eps` (a head whose overfitting did
not change would otherwise get an infinite weight), and if every G_k is 0 the weights fall
back to uniform. Equation numbering of the arXiv text was not checked here (no copy in
shared/papers): the formulas above are the paper's definitions of O, Delta O, Delta G,
OGR = |Delta O / Delta G| and the optimal-blend estimate w*_k ~ Delta G_k / Delta O_k^2.

Schedule (online G-Blend's "super-epoch"): losses are measured once at the start of
training ("prev" for the first estimate), then every `reestimate_every` epochs (default
max(1, epochs // 4), i.e. four super-epochs per run; intervals of ~20 epochs are also in use and
BalanceBenchmark's config uses 10, on much longer runs than ours) the weights are
recomputed from (prev, now) and "now" becomes the next "prev". Before the first estimate the weights are
uniform, 1 / (M + 1). The weights are method state (extra_state; resume-exact) and
`self.weights` exposes them by head name ("fused", then the modalities).

Holdout: `holdout_fraction` (default 0.08) of the training split, stratified
by label and seeded with the run seed. The training loop iterates only over the other 92%
(this method owns train_epoch; batch["index"], and the index the trainer's per-sample
transforms see, are positions in the full training split, as for every other method).
Validation and test are never used for the weights. L^T is measured in eval mode on the
training part (same mode as the holdout, so the gap is not a dropout/BatchNorm artefact).
Test-time prediction is the fused head.

Hyperparameters: holdout_fraction 0.08; reestimate_every (paper: a super-epoch, see
above); eps 1e-8 (ours). Needs >= 2 modalities.

Where we differ from the authors' code / the paper:
- The paper measures Delta O and Delta G by training the uni-modal and multi-modal models
  for n epochs each (BalanceBenchmark's online trainer: a temporary copy of the current
  model trained per head for a super-epoch). We measure them on
  the heads of the one jointly trained model between two re-estimations, which costs two
  eval passes instead of (M + 1) extra training runs; the blend formula is the same.
- |G / O^2| (absolute value, as in the offline G-Blend weights) also gives a positive
  weight to a head whose holdout loss rose; the paper's Proposition uses the signed gain.
- Most public code picks the best epoch on the test set; the trainer
  selects on val. The default reestimate_every depends on `epochs`, so a run resumed with
  more epochs keeps the old schedule only if reestimate_every is given explicitly.
"""
from __future__ import annotations

from typing import Dict, List

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split
from torch import nn

from mmlab.methods.base import Method, register
from mmlab.methods.common import eval_mode
from mmlab.models import build_model
from mmlab.models.fusion import HEADS, Fusion


def blend_weights(train_prev: torch.Tensor, hold_prev: torch.Tensor, train_now: torch.Tensor,
                  hold_now: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """G-Blend weights from per-head losses, each [K]: w_k = |G_k| / max(O_k^2, eps),
    normalised to sum 1 (uniform if no head generalised at all)."""
    tp, hp, tn, hn = (torch.as_tensor(t, dtype=torch.float64) for t in (train_prev, hold_prev, train_now, hold_now))
    overfit = (hn - tn) - (hp - tp)                       # Delta O_k [K]
    gain = hp - hn                                        # Delta G_k [K]
    w = gain.abs() / overfit.pow(2).clamp_min(eps)        # [K]
    if float(w.sum()) <= 0 or not bool(torch.isfinite(w).all()):
        return torch.full_like(w, 1.0 / len(w))
    return w / w.sum()


class BlendFusion(Fusion):
    """The fused head (any registered fusion) plus one uni-modal head per modality;
    forward = the fused logits, per_modality = the uni-modal heads' logits."""

    def __init__(self, fused: Fusion, dims, num_classes: int, head: str = "linear"):
        super().__init__(dims, num_classes)
        self.fused = fused
        self.uni = nn.ModuleDict({m: HEADS.get(head)(d, num_classes) for m, d in dims.items()})

    def forward(self, feats):
        return self.fused(feats)

    def per_modality(self, feats):
        return {m: self.uni[m](feats[m]) for m in self.modalities}


class _Reindex:
    """Loader transform for a subset of the training split: rewrites batch["index"] from
    subset positions to training-split positions BEFORE the trainer's transform runs, so
    per-sample transforms (missing-modality masks, noise) draw exactly what they draw for
    that sample under every other method."""

    def __init__(self, transform, positions: torch.Tensor):
        self.transform, self.positions = transform, positions

    def __call__(self, batch, idx, epoch):
        idx = self.positions[idx]                      # [B] positions in trainer.splits.train
        batch["index"] = idx
        return batch if self.transform is None else self.transform(batch, idx, epoch)


def stratified_holdout(y: torch.Tensor, fraction: float, seed: int):
    """(train_idx, holdout_idx), sorted LongTensors of positions in the training split;
    stratified by label when every class can be represented, else a seeded plain split."""
    idx = np.arange(len(y))
    try:
        tr, ho = train_test_split(idx, test_size=fraction, random_state=seed, stratify=y.cpu().numpy())
    except ValueError:                          # too few samples per class to stratify
        tr, ho = train_test_split(idx, test_size=fraction, random_state=seed)
    return torch.as_tensor(np.sort(tr)), torch.as_tensor(np.sort(ho))


@register("gblend")
class GBlend(Method):
    fusion = "concat"
    description = "Gradient-Blending: fused + uni-modal heads, loss weights from holdout overfitting/generalisation"

    def __init__(self, info, train_cfg, holdout_fraction: float = 0.08, reestimate_every: int | None = None,
                 eps: float = 1e-8, **kw):
        super().__init__(info, train_cfg, **kw)
        if len(self.modalities) < 2:
            raise ValueError(f"gblend needs at least two modalities, got {self.modalities}; "
                             f"pass modalities=[...] with two or more of {info.modality_names}")
        if not 0 < holdout_fraction < 1:
            raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction} (default 0.08)")
        if reestimate_every is not None and int(reestimate_every) < 1:
            raise ValueError(f"reestimate_every must be >= 1 epoch, got {reestimate_every}")
        self.holdout_fraction, self.eps = float(holdout_fraction), float(eps)
        self.reestimate_every = int(reestimate_every or max(1, train_cfg.epochs // 4))
        self.heads: List[str] = ["fused"] + self.modalities
        self.w = torch.full((len(self.heads),), 1.0 / len(self.heads), dtype=torch.float64)
        self.prev = None                     # (train losses [K], holdout losses [K]) or None
        self.weight_history: list = []       # [epoch, w_fused, w_m...] per re-estimation

    @property
    def weights(self) -> Dict[str, float]:
        return {k: float(v) for k, v in zip(self.heads, self.w)}

    def build_model(self) -> nn.Module:
        net = build_model(self.info, fusion=self.fusion, modalities=self.modalities, **self.model_kwargs)
        dims = {m: e.out_dim for m, e in net.encoders.items()}
        net.fusion = BlendFusion(net.fusion, dims, self.info.num_classes, head=self.model_kwargs["head"])
        return net

    # --- holdout and the training loop ----------------------------------------------
    def on_fit_start(self, trainer) -> None:
        super().on_fit_start(trainer)
        data = trainer.splits.train
        self.train_idx, self.holdout_idx = stratified_holdout(data.y, self.holdout_fraction, trainer.cfg.seed)
        self.train_part, self.holdout = data.subset(self.train_idx), data.subset(self.holdout_idx)
        self.train_loader = self.subset_loader(trainer, self.train_part, self.train_idx, train=True)

    @staticmethod
    def subset_loader(trainer, data, positions: torch.Tensor, train: bool):
        """The trainer's loader over a subset of the training split, batch["index"] (and the
        trainer's transforms) in training-split positions."""
        loader = trainer.loader(data, train=train)
        loader.transform = _Reindex(loader.transform, positions)
        return loader

    def train_epoch(self, trainer, loader, epoch: int) -> None:
        # `loader` covers the whole training split; ours skips the holdout
        self.train_loader.set_epoch(epoch)
        for batch in trainer.progress(self.train_loader, epoch):
            self.training_step(trainer, batch)

    def loss(self, out, batch):
        y, w = batch["label"], self.w.tolist()
        losses = [F.cross_entropy(out.logits, y)] + [F.cross_entropy(out.per_modality[m], y) for m in self.modalities]
        return sum(wk * lk for wk, lk in zip(w, losses))

    # --- weight estimation --------------------------------------------------------------
    @torch.no_grad()
    def head_losses(self, trainer, data, positions: torch.Tensor) -> torch.Tensor:
        """Mean CE of every head (fused, then modalities) on `data` (the training-split
        subset at `positions`) in eval mode, [K] float64."""
        total, n = torch.zeros(len(self.heads), dtype=torch.float64), 0
        with eval_mode(trainer.model) as model:
            for batch in self.subset_loader(trainer, data, positions, train=False):
                with trainer.autocast():
                    out = model(batch)
                y = batch["label"]
                zs = [out.logits] + [out.per_modality[m] for m in self.modalities]
                total += torch.stack([F.cross_entropy(z.float(), y, reduction="sum") for z in zs]).double().cpu()
                n += len(y)
        return total / n

    def _measure(self, trainer):
        return (self.head_losses(trainer, self.train_part, self.train_idx),
                self.head_losses(trainer, self.holdout, self.holdout_idx))

    def on_epoch_start(self, trainer, epoch: int) -> None:
        if self.prev is None:                 # fit start (a resumed run has it from the checkpoint)
            self.prev = self._measure(trainer)

    def on_epoch_end(self, trainer, epoch: int) -> None:
        # on schedule even after the last epoch: a resumed run with more epochs needs it
        if (epoch + 1) % self.reestimate_every:
            return
        now = self._measure(trainer)
        self.w = blend_weights(self.prev[0], self.prev[1], now[0], now[1], self.eps)
        self.prev = now
        self.weight_history.append([float(epoch)] + self.w.tolist())

    # --- state ------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        state = {"weights": self.w.clone(), "weight_history": [list(r) for r in self.weight_history]}
        if self.prev is not None:
            state["prev_train"], state["prev_holdout"] = self.prev[0].clone(), self.prev[1].clone()
        return state

    def load_extra_state(self, state: dict) -> None:
        self.w = state["weights"].detach().to("cpu", torch.float64)
        self.weight_history = [list(r) for r in state["weight_history"]]
        if "prev_train" in state:
            self.prev = (state["prev_train"].detach().cpu().double(), state["prev_holdout"].detach().cpu().double())
