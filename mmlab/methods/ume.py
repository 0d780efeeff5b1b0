"""Uni-Modal Ensemble (UME; Du et al., ICML 2023, "On Uni-Modal Feature Learning in
Supervised Multi-Modal Learning", arXiv 2305.01233, Sec. 5 "UME and UMT").

Each modality m has its own encoder phi_m and linear head h_m, trained ALONE: its own
cross-entropy CE(h_m(phi_m(x_m)), y) and its own optimizer, no parameter shared with any
other modality (so no cross-modal interaction and no modality laziness). At test time the
uni-modal predictions are combined by a weighted sum (the paper weights the uni-modal
models' predictions directly; ReconBoost's summary: "weights the predictions of
well-trained uni-modal models"):

    combine="logits" (default):  z = sum_m w_m z_m
    combine="probs":             z = log sum_m w_m softmax(z_m)     (log of the mixture)

with w = `weights` (one non-negative number per modality, a dict or a list in modality
order) normalised to sum 1; default equal weights. Normalisation does not change the
argmax of the logit sum, only the scale of the fused logits (and so the val loss).

Model selection (`per_modality_selection`, default True): the paper trains each uni-modal
model to its own best before ensembling. After every epoch each branch (encoder + head)
is evaluated on the VALIDATION split; when its val accuracy improves (ties: lower val CE)
a CPU copy of that branch's weights is kept in the method state (extra_state, so resume
is exact). At the end of the last epoch every branch's best copy is loaded into the
model, and the method resets the trainer's running best so that the trainer keeps this
final model: the trainer's fused-accuracy epoch selection is replaced by per-branch
selection, and the returned model, the last history row's val metrics and best.pt all
describe the same ensemble. (Why not snapshot buffers in the model: the trainer restores
the state of ITS selected epoch, whose snapshots are only best-so-far; non-persistent
buffers would survive that restore but make the history and the checkpoint describe
another model.) The live weights are set aside in the method state at that point, so a
finished run resumed with more epochs continues training from them. With
per_modality_selection=False the trainer selects one epoch on fused val accuracy as for
every other method. UME is the only method here that writes trainer.best.

Hyperparameters: weights (a weighted sum; equal by default here), combine ("logits"),
per_modality_selection (True). Optimiser / lr / epochs come from the run.
Needs >= 2 modalities.

Where we differ from the authors' setup:
- The paper trains each uni-modal model as a separate run and ensembles the trained
  models; here all branches train in one run with the same optimiser settings and epoch
  budget, each stepping its own optimizer on its own loss (equivalent to separate runs
  that share the data order).
- The paper's exact combination weights per dataset were not recoverable from the text
  available here (only abstracts were reachable); `weights` and `combine` expose both
  readings of "weighted predictions".
- Most public code selects epochs on the test set; we select on val.
"""
from __future__ import annotations

import math
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from mmlab.methods.base import Method, register
from mmlab.methods.branches import branch, branch_optimizers
from mmlab.models import build_model
from mmlab.models.fusion import Fusion

COMBINES = ("logits", "probs")


class EnsembleFusion(Fusion):
    """Per-modality heads (given); fused output = weighted sum of logits or log of the
    weighted mixture of softmaxes. `weights` is a buffer [M] summing to 1."""

    def __init__(self, heads: nn.ModuleDict, dims, num_classes, weights=None, combine: str = "logits"):
        super().__init__(dims, num_classes)
        self.heads = heads
        w = torch.as_tensor(weights if weights is not None else [1.0] * len(dims), dtype=torch.float32)
        self.register_buffer("weights", w / w.sum())
        self.combine = combine

    def per_modality(self, feats):
        return {m: self.heads[m](feats[m]) for m in self.modalities}

    def forward(self, feats):
        z = torch.stack(list(self.per_modality(feats).values()))          # [M, B, C]
        w = self.weights.to(z.dtype).view(-1, 1, 1)                       # [M, 1, 1]
        if self.combine == "logits":
            return (w * z).sum(0)
        return torch.logsumexp(torch.log(w) + torch.log_softmax(z, -1), 0)  # log sum_m w_m p_m


def _weights_list(weights, modalities, name: str):
    if weights is None:
        return None
    if isinstance(weights, dict):
        if set(weights) != set(modalities):
            raise ValueError(f"{name}: weights must name every modality {modalities} exactly, got {sorted(weights)}")
        weights = [weights[m] for m in modalities]
    weights = [float(x) for x in weights]
    if len(weights) != len(modalities) or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"{name}: weights needs one non-negative number per modality {modalities} "
                         f"(not all zero), got {weights}")
    return weights


@register("ume")
class UME(Method):
    fusion = "sum"          # encoders and heads as in "sum"; the combination is EnsembleFusion
    description = "Uni-Modal Ensemble: independently trained uni-modal models, weighted sum of predictions"

    def __init__(self, info, train_cfg, weights=None, combine: str = "logits",
                 per_modality_selection: bool = True, **kw):
        if kw.get("fusion") is not None:
            raise ValueError("ume has its own test-time combination; use combine='logits'|'probs' "
                             "and weights=..., not fusion=")
        kw.pop("fusion", None)
        super().__init__(info, train_cfg, **kw)
        if len(self.modalities) < 2:
            raise ValueError(f"ume needs at least two modalities, got {self.modalities}; "
                             f"for one modality use method 'unimodal'")
        if combine not in COMBINES:
            raise ValueError(f"unknown combine {combine!r}; use one of {COMBINES}")
        self.weights, self.combine = _weights_list(weights, self.modalities, "ume"), combine
        self.per_modality_selection = bool(per_modality_selection)
        self.best: Dict[str, dict] = {}      # modality -> {"epoch", "acc", "loss", "state"}
        self.live: Dict[str, dict] = {}      # live branch weights set aside at the last epoch

    def build_model(self) -> nn.Module:
        # the "sum" model's encoders and per-modality heads (same init as sum/late), our combination
        net = build_model(self.info, fusion="sum", modalities=self.modalities, **self.model_kwargs)
        net.fusion = EnsembleFusion(net.fusion.heads, net.fusion.dims, self.info.num_classes,
                                    self.weights, self.combine)
        return net

    branch = staticmethod(branch)

    def configure_optimizers(self, model):
        return branch_optimizers(model, self.modalities, self.cfg)

    def training_step(self, trainer, batch):
        # one forward; each modality's CE reaches only its own branch, stepped by its own optimizer
        with trainer.autocast():
            out = trainer.model(batch)
            losses = {m: F.cross_entropy(out.per_modality[m], batch["label"]) for m in self.modalities}
        for m in self.modalities:
            trainer.optimize(losses[m], self.optimizers[m])
        trainer.log_batch(out, batch, sum(l.detach() for l in losses.values()))

    # --- per-branch model selection -----------------------------------------------------
    def branch_val_scores(self, trainer) -> Dict[str, tuple]:
        """{m: (val accuracy, val CE)} of each branch alone."""
        p = trainer.predict(trainer.splits.val)
        y = torch.from_numpy(p["labels"])
        out = {}
        for m, z in p["per_modality"].items():
            z = torch.from_numpy(z)
            out[m] = (float((z.argmax(1) == y).float().mean()), float(F.cross_entropy(z, y)))
        return out

    def on_epoch_end(self, trainer, epoch: int) -> None:
        if not self.per_modality_selection:
            return
        for m, (acc, loss) in self.branch_val_scores(trainer).items():
            old = self.best.get(m)
            if old is None or (acc, -loss) > (old["acc"], -old["loss"]):
                self.best[m] = {"epoch": epoch, "acc": acc, "loss": loss, "state": self.branch_state(trainer.model, m)}
        if epoch == trainer.cfg.epochs - 1:
            # the live weights are kept aside: a run resumed with more epochs continues from them
            self.live = {m: self.branch_state(trainer.model, m) for m in self.modalities}
            self.load_best_branches(trainer.model)
            # keep this final model: the trainer's fused-accuracy selection is replaced by ours
            trainer.best = {"epoch": -1, "score": -math.inf, "loss": math.inf, "state": None}

    def branch_state(self, model, m: str) -> dict:
        return {k: v.detach().to("cpu", copy=True) for k, v in self.branch(model, m).state_dict().items()}

    def load_best_branches(self, model) -> None:
        for m, b in self.best.items():
            self.branch(model, m).load_state_dict(b["state"])

    @property
    def best_epochs(self) -> Dict[str, int]:
        return {m: b["epoch"] for m, b in self.best.items()}

    # --- state ----------------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {"best": {m: dict(b) for m, b in self.best.items()}, "live": dict(self.live)}

    def load_extra_state(self, state: dict) -> None:
        self.best = {m: dict(b) for m, b in state["best"].items()}
        self.live = dict(state.get("live", {}))

    def load_state_dict(self, state: dict, model: nn.Module) -> None:
        super().load_state_dict(state, model)
        # a checkpoint of a finished run holds the best branches; continue from the live ones
        for m, s in self.live.items():
            self.branch(model, m).load_state_dict(s)
        self.live = {}
