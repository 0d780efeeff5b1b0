"""ReconBoost (Hua et al., ICML 2024): modality-alternating boosting with reconciliation.

Learners phi_k = W_k F_k (one encoder + linear head per modality). Training is a sequence
of stages; stage s (Alg. 1):
  1. boosting, T1 epochs: pick one modality k (fixed alternation, or by loss: S1 lowest,
     S2 highest, App. D.5); a FRESH optimizer over learner k only; the others are frozen
     (no grad, eval mode: they are the "historical models"). Loss (Eq. 7, Corollary 3.2,
     Eq. 8, line 6 of Alg. 1):
        L_k = CE(phi_k, y) - lam * KL(sigma || softmax(phi_k)) + alpha * L_mcr
     with sigma = softmax(Phi_{M/k}), Phi_{M/k} = sum_{j != k} phi_j (Eq. 7; detached), and
     L_mcr = mean_i ||grad_phi_k CE(phi_k) - grad_phi_prev CE(phi_prev)||^2
           = mean_i ||softmax(phi_k) - softmax(phi_prev)||^2      (Eq. 8; grad of CE is p - y)
     where phi_prev is the learner updated in the previous stage (frozen). With lam = 1 the
     gradient w.r.t. phi_k is exactly that of CE against the boosting pseudo-label
     y - sigma (Eq. 19-20): the new learner fits the others' residual.
  2. global rectification (GRS, Eq. 9, Alg. 1 lines 10-13), T2 epochs: a fresh optimizer
     over all learners; loss l(sum_k phi_k, y) on the fused score.
Final score (Eq. 32, App. D.6): `final="na"` sum_k phi_k (NA), `"lw"` sum_k w_k phi_k
with learnable w (LW), `"tmc"` Dempster-Shafer combination (mmlab.methods.tmc), `"qmf"`
energy-weighted sum (mmlab.methods.qmf). GRS trains the chosen rule's own objective: CE
on the NA / LW score; TMC's evidential loss (tmc_loss, annealed by the trainer's pass
index with the same rule as the TMC method); QMF's loss (CE on the fused score + each
learner's CE + the ranking term over a per-sample loss history, mmlab.methods.qmf.
QMFObjective; the history is fed by the GRS passes only).
Every learner sees its modality through the model's masked path (`model.encode`), so a
missing-modality transform (batch["mask"]) zeroes an absent modality's features here too.

Hyperparameters (paper App. C.3 / D.8): lam in [1/4, 1/2] (default 1/3, CREMA-D's best);
alpha (the paper gives no value; default 0.1); T1 = T2 = 4 on AVE/CREMA-D/ModelNet40 and 1
on MOSEI/MOSI/CH-SIMS (`t1`, `t2`; the defaults here are 1 and 1, the sentiment sets'
value, which the equal-budget protocol uses; the paper recipe of mmlab.configs sets 4 for
the audio-visual stand-in); SGD lr 0.01 with the same lr in both phases (set through the
run's TrainConfig; the paper recipe also uses momentum 0.9 and weight decay 5e-4, the
authors' code values); lr x `lr_decay` every `lr_decay_every` stages (App. C.3.2:
CREMA-D x0.1 every 30 stages; AVE x0.5 after 40). The trainer's epochs are passes over
the data: a stage takes T1 + T2 of them, so `epochs` sets the number of stages.

Where we differ from the paper, or follow the authors' code only as an option:
- reconciliation: the code uses a weighted CE, -w1 mean_c[y log p] + w2 mean_c[y sigma log p]
  (w1/w2 = 5/1 CREMA-D, 4/1 AVE). Default here is the paper's KL form; `recon="code"`
  gives the code's form (options w1, w2).
- boost rate: the code multiplies Phi_{M/k} and the fused score by a learnable scalar
  beta trained in GRS. The paper has no beta (Eq. 7, Eq. 9, Alg. 1 line 12); the default
  `boost_rate="paper"` never uses it, `boost_rate="code"` does (beta starts at 1).
- MCR: the code detaches both sides, so it contributes no gradient. Ours has a gradient
  through phi_k; `mcr="code"` reproduces the detached (inert) version.
- initialisation: the code starts encoders from unimodal checkpoints; we start from
  scratch like every other method (`init="scratch"`). `init="code"` first trains each
  modality's unimodal model (encoder + linear head; `init_epochs`, default the run's
  epochs, the run's optimizer) and starts every learner from it.
- the paper's "until converge" is a fixed number of passes here (`epochs`), with the
  epoch (pass) selected on the validation split; the code selects the best epoch on test.
- S1/S2 measure each learner's mean training loss in one eval pass at stage start
  (the paper does not say on which data the loss is measured).
- the paper's T1 and T2 count epochs per stage; ours count passes, which is the same
  thing (one epoch = one pass over the training split, minus the held-out validation).
"""
from __future__ import annotations

from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from mmlab.methods.base import Method, make_optimizer, register
from mmlab.methods.combine import QMFObjective, qmf_combine, tmc_combine, tmc_loss
from mmlab.methods.common import check_choice, eval_mode
from mmlab.models import build_model
from mmlab.models.fusion import HEADS, Fusion
from mmlab.models.net import ModelOutput

FINAL_RULES = ("na", "lw", "tmc", "qmf")
ORDERS = ("fixed", "s1", "s2")
FORMS = ("paper", "code")
INITS = ("scratch", "code")


class BoostFusion(Fusion):
    """Per-modality learners' heads and the final score rule (Eq. 32). `boost_rate` (beta)
    is the authors' code's learnable scale of the summed score; with use_boost_rate=False
    (the paper) it is frozen at 1 and never used."""

    def __init__(self, dims, num_classes, head: str = "linear", final: str = "na",
                 use_boost_rate: bool = False):
        super().__init__(dims, num_classes)
        self.heads = nn.ModuleDict({m: HEADS.get(head)(d, num_classes) for m, d in dims.items()})
        self.final, self.use_boost_rate = final, use_boost_rate
        self.boost_rate = nn.Parameter(torch.ones(()), requires_grad=use_boost_rate)   # beta
        self.weights = nn.Parameter(torch.ones(len(dims)), requires_grad=final == "lw")

    def per_modality(self, feats):
        return {m: self.heads[m](feats[m]) for m in self.modalities}

    def scaled_sum(self, logits) -> torch.Tensor:
        """sum of the given logits [B, C] (Eq. 7 / 9), times beta only in the code form."""
        s = torch.stack(list(logits)).sum(0)
        return self.boost_rate * s if self.use_boost_rate else s

    def combine(self, logits: Dict[str, torch.Tensor]) -> torch.Tensor:
        z = [logits[m] for m in self.modalities]                   # M x [B, C]
        if self.final == "na":
            return self.scaled_sum(z)
        if self.final == "lw":
            return torch.einsum("m,mbc->bc", self.weights, torch.stack(z))
        if self.final == "tmc":
            return tmc_combine(logits)
        return qmf_combine(logits)

    def forward(self, feats):
        return self.combine(self.per_modality(feats))


def reconciliation_loss(logit_k: torch.Tensor, others: torch.Tensor, y: torch.Tensor, lam: float,
                        form: str = "paper", w1: float = 5.0, w2: float = 1.0) -> torch.Tensor:
    """CE(phi_k, y) - lam * KL(softmax(others) || softmax(phi_k)), batch mean (Eq. 7 + Cor. 3.2).

    logit_k: [B, C] learner being trained; others: [B, C] Phi_{M/k} (detached here).
    form="code": the authors' weighted CE, -w1 mean_c[y log p] + w2 mean_c[y sigma log p].
    """
    logp = F.log_softmax(logit_k.float(), -1)                    # [B, C]
    sigma = F.softmax(others.detach().float(), -1)               # [B, C]
    if form == "code":
        onehot = F.one_hot(y, logp.shape[1]).to(logp.dtype)
        return (-w1 * onehot * logp + w2 * onehot * sigma * logp).mean()
    kl = (sigma * (torch.log(sigma.clamp_min(1e-12)) - logp)).sum(1)   # [B]
    return F.cross_entropy(logp, y) - lam * kl.mean()


def mcr_loss(logit_k: torch.Tensor, logit_prev: torch.Tensor, detach: bool = False) -> torch.Tensor:
    """Eq. 8: mean_i ||(p_k - y) - (p_prev - y)||^2 = mean_i ||p_k - p_prev||^2 (p = softmax).
    detach=True is the authors' code (both sides detached: no gradient)."""
    p_k = F.softmax(logit_k.float(), -1)
    p_prev = F.softmax(logit_prev.detach().float(), -1)
    if detach:
        p_k = p_k.detach()
    return (p_k - p_prev).pow(2).sum(1).mean()


@register("reconboost")
class ReconBoost(Method):
    description = "alternating boosting: one learner per stage, KL reconciliation, MCR, global rectification"

    def __init__(self, info, train_cfg, lam: float = 1 / 3, alpha: float = 0.1, t1: int = 1, t2: int = 1,
                 grs: bool = True, final: str = "na", order: str = "fixed", recon: str = "paper",
                 mcr: str = "paper", boost_rate: str = "paper", init: str = "scratch",
                 init_epochs: int | None = None, w1: float = 5.0, w2: float = 1.0, lr_decay: float = 1.0,
                 lr_decay_every: int = 0, qmf_lam: float = 0.1, **kw):
        super().__init__(info, train_cfg, **kw)
        for name, value, choices in (("final", final, FINAL_RULES), ("order", order, ORDERS),
                                     ("recon", recon, FORMS), ("mcr", mcr, FORMS),
                                     ("boost_rate", boost_rate, FORMS), ("init", init, INITS)):
            check_choice("reconboost", name, value, choices)
        if len(self.modalities) < 2:
            raise ValueError(f"reconboost needs >= 2 modalities, got {self.modalities}")
        if t1 < 1 or t2 < 0 or (grs and t2 < 1):
            raise ValueError(f"need t1 >= 1 and t2 >= 1 with grs (t2 = 0 only with grs=False); got t1={t1}, t2={t2}")
        if init_epochs is not None and init_epochs < 1:
            raise ValueError(f"reconboost init_epochs must be >= 1 (or None = the run's epochs), got {init_epochs}")
        self.lam, self.alpha, self.t1, self.t2 = lam, alpha, t1, (t2 if grs else 0)
        self.grs, self.final, self.order, self.recon, self.mcr = grs, final, order, recon, mcr
        self.boost_rate, self.init, self.init_epochs = boost_rate, init, init_epochs
        self.w1, self.w2, self.lr_decay, self.lr_decay_every = w1, w2, lr_decay, lr_decay_every
        self.qmf = QMFObjective(self.modalities, lam=qmf_lam) if final == "qmf" else None
        self.stage, self.current, self.previous = -1, None, None
        self.selections: List[str] = []            # modality chosen per stage (F9, T13)
        self.stage_losses: List[dict] = []         # S1/S2: per-learner train loss at stage start

    # --- model --------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        model = build_model(self.info, fusion="sum", modalities=self.modalities, **self.model_kwargs)
        dims = {m: e.out_dim for m, e in model.encoders.items()}
        model.fusion = BoostFusion(dims, self.info.num_classes, self.model_kwargs["head"], self.final,
                                   use_boost_rate=self.boost_rate == "code")
        return model

    def learner_params(self, model, m: str):
        return list(model.encoders[m].parameters()) + list(model.fusion.heads[m].parameters())

    @property
    def period(self) -> int:
        return self.t1 + self.t2

    def phase(self, epoch: int) -> str:
        return "boost" if epoch % self.period < self.t1 else "grs"

    def _lr_scale(self) -> float:
        if not self.lr_decay_every:
            return 1.0
        return self.lr_decay ** (max(self.stage, 0) // self.lr_decay_every)

    def _optimizer(self, params):
        opt = make_optimizer(params, self.cfg)
        for g in opt.param_groups:
            g["lr"] = self.cfg.lr * self._lr_scale()
        return opt

    def configure_optimizers(self, model):
        return {}      # optimizers are created fresh per stage and phase, in on_epoch_start

    def make_named_optimizer(self, key, model):
        """Resume: rebuild the optimizer of the phase in progress (its state is loaded after)."""
        if key == "grs":
            return self._optimizer(model.parameters())
        return self._optimizer(self.learner_params(model, self.current))

    # --- stages ---------------------------------------------------------------------------
    def on_fit_start(self, trainer) -> None:
        self.optimizers = {}
        if self.qmf is not None:
            self.qmf.start(len(trainer.splits.train), trainer.device)

    def on_epoch_start(self, trainer, epoch: int) -> None:
        if epoch == 0 and self.init == "code":      # never on resume: epoch 0 is then done
            self.warm_start(trainer)
        pos = epoch % self.period
        if pos == 0:                                   # a new boosting stage
            self.stage = epoch // self.period
            self.previous = self.current
            self.current = self.select(trainer)
            self.selections.append(self.current)
            self.optimizers = {"boost": self._optimizer(self.learner_params(trainer.model, self.current))}
        elif pos == self.t1:                            # global rectification
            self.optimizers = {"grs": self._optimizer(trainer.model.parameters())}

    def warm_start(self, trainer) -> None:
        """init="code": every learner starts from its modality's unimodal model (the authors'
        code loads unimodal checkpoints), trained here in a nested run."""
        from mmlab.methods.umt import train_teacher
        epochs = self.init_epochs or trainer.cfg.epochs
        for m in self.modalities:
            uni = train_teacher(trainer, self.info, self.model_kwargs, m, epochs)
            trainer.model.encoders[m].load_state_dict(uni.encoders[m].state_dict())
            trainer.model.fusion.heads[m].load_state_dict(uni.fusion.head.state_dict())

    def select(self, trainer) -> str:
        if self.order == "fixed":
            return self.modalities[self.stage % len(self.modalities)]
        losses = self.learner_losses(trainer)
        self.stage_losses.append(losses)
        pick = min if self.order == "s1" else max
        return pick(self.modalities, key=lambda m: losses[m])

    @torch.no_grad()
    def learner_losses(self, trainer) -> Dict[str, float]:
        """Mean training CE of each learner's own prediction phi_k (S1/S2, App. D.5)."""
        total = {m: torch.zeros((), device=trainer.device) for m in self.modalities}
        n = 0
        with eval_mode(trainer.model) as model:
            for batch in trainer.loader(trainer.splits.train, train=False):
                with trainer.autocast():
                    per = model.fusion.per_modality(model.encode(batch))
                for m in self.modalities:
                    total[m] += F.cross_entropy(per[m].float(), batch["label"], reduction="sum")
                n += len(batch["label"])
        return {m: float(v) / n for m, v in total.items()}

    # --- training -------------------------------------------------------------------------
    def train_epoch(self, trainer, loader, epoch: int) -> None:
        boost = self.phase(epoch) == "boost"
        if boost:      # frozen learners behave as at test time (no BatchNorm/dropout updates)
            for m in self.modalities:
                if m != self.current:
                    trainer.model.encoders[m].eval()
        step = self.boost_step if boost else self.grs_step
        for batch in trainer.progress(loader, epoch):
            step(trainer, batch, epoch)

    def boost_step(self, trainer, batch, epoch) -> None:
        model, k = trainer.model, self.current
        with trainer.autocast():
            with torch.no_grad():
                frozen = [m for m in self.modalities if m != k]
                feats = model.encode(batch, frozen)
                per = {m: model.fusion.heads[m](feats[m]) for m in frozen}
            feats[k] = model.encode(batch, [k])[k]        # the masked path, as for every method
            per[k] = model.fusion.heads[k](feats[k])
            loss = self.boost_loss(model, per, batch["label"])
        trainer.optimize(loss, self.optimizers["boost"])
        with torch.no_grad():
            fused = model.fusion.combine(per)
        trainer.log_batch(ModelOutput(fused, per, feats), batch, loss)

    def boost_loss(self, model, per: Dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        k = self.current
        others = model.fusion.scaled_sum([per[m] for m in self.modalities if m != k]).detach()  # Phi_{M/k}
        loss = reconciliation_loss(per[k], others, y, self.lam, self.recon, self.w1, self.w2)
        if self.alpha and self.previous is not None and self.previous != k:
            loss = loss + self.alpha * mcr_loss(per[k], per[self.previous], detach=self.mcr == "code")
        return loss

    def grs_step(self, trainer, batch, epoch) -> None:
        model = trainer.model
        with trainer.autocast():     # = model(batch), with each learner's head run once, not twice
            feats = model.encode(batch)
            per = model.fusion.per_modality(feats)
            out = ModelOutput(model.fusion.combine(per), per, feats)
            if self.qmf is not None:
                self.qmf.update_history(per, batch["label"], batch["index"])
            loss = self.grs_loss(out, batch, epoch)
        trainer.optimize(loss, self.optimizers["grs"])
        trainer.log_batch(out, batch, loss)

    def grs_loss(self, out, batch, epoch) -> torch.Tensor:
        """The final rule's own objective (Eq. 9 with l = CE for NA / LW)."""
        if self.final == "tmc":
            return tmc_loss(out.per_modality, batch["label"], epoch)
        if self.final == "qmf":
            return self.qmf(out.logits, out.per_modality, batch["label"], batch["index"])
        return F.cross_entropy(out.logits.float(), batch["label"])

    # --- state ------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        state = {"stage": self.stage, "current": self.current, "previous": self.previous,
                 "selections": list(self.selections), "stage_losses": list(self.stage_losses)}
        if self.qmf is not None:
            state["qmf"] = self.qmf.state()
        return state

    def load_extra_state(self, state: dict) -> None:
        self.stage, self.current, self.previous = state["stage"], state["current"], state["previous"]
        self.selections, self.stage_losses = list(state["selections"]), list(state["stage_losses"])
        if self.qmf is not None and "qmf" in state:
            self.qmf.load(state["qmf"])
