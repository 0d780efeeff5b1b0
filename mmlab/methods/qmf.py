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

from torch import Tensor

from mmlab.methods.base import Method, register
from mmlab.methods.combine import QMFObjective, check_qmf_options, energy, qmf_combine
from mmlab.methods.common import swap_fusion
from mmlab.models import build_model
from mmlab.models.fusion import SumFusion

class QMFFusion(SumFusion):
    """One linear head per modality (as "sum"); fused logits = qmf_combine(per-modality), an
    absent modality (`present`, a missing-modality protocol) weighted 0."""
    masks = True

    def __init__(self, dims, num_classes, head: str = "linear", temperature: float = 1.0,
                 scale: float = 0.1, weighting: str = "softmax"):
        super().__init__(dims, num_classes, head=head)
        self.temperature, self.scale, self.weighting = temperature, scale, weighting

    def forward(self, feats, present=None):
        return qmf_combine(self.per_modality(feats), self.temperature, self.scale, self.weighting, present)


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
        check_qmf_options(temperature, weighting)
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
