"""TMC: Trusted Multi-view Classification (Han et al., ICLR 2021, arXiv 2102.02051).

Each modality m gives a subjective-logic opinion over the C classes (paper Sec. 3.1):
  evidence  e_m = softplus(z_m) >= 0       (z_m: the modality head's logits, [B, C])
  Dirichlet alpha_m = e_m + 1,  S_m = sum_k alpha_mk
  belief    b_mk = e_mk / S_m,  uncertainty u_m = C / S_m   (sum_k b_mk + u_m = 1)
The evidence function is not fixed by the paper (any non-negative map: ReLU, exp,
softplus); the authors' code ends every classifier with Softplus, so we use softplus.

Opinions are fused with the reduced Dempster-Shafer rule (paper Definition 3.1), pairwise
over the modalities in order:
  conflict  K = sum_{i != j} b1_i b2_j
  b_k = (b1_k b2_k + b1_k u2 + b2_k u1) / (1 - K),   u = u1 u2 / (1 - K),   S = C / u.
Written back in evidence (e = b S), the normaliser 1 - K cancels exactly:
  e = e1 + e2 + e1 * e2 / C                                                 (*)
which is what `ds_combine_two` computes (vectorised, no cancellation in 1 - K; a test
checks it against the belief form above). (*) is commutative and associative, so the
pairwise loop gives the same result in any modality order; a vacuous opinion (e = 0,
u = 1) is the identity, and the fused uncertainty is never above either input's.
`tmc_combine` returns log(alpha / S), the log of the fused Dirichlet's expected class
probabilities: argmax is the prediction and it can sit in ModelOutput.logits (it is a
normalised log-probability, so the trainer's cross-entropy on it is the NLL of alpha/S).

Loss (paper Sec. 3.3), for each modality's Dirichlet and for the fused one, summed:
  L_ace = sum_k y_k (digamma(S) - digamma(alpha_k))   (CE integrated over Dir(alpha))
  L_kl  = KL(Dir(alpha~) || Dir(1)),  alpha~ = y + (1 - y) * alpha  (true-class evidence removed)
  L_acc = L_ace + lambda_t L_kl,  lambda_t = min(1, t / annealing_epochs), t = epoch + 1
  L = mean over the batch of [L_acc(alpha_fused) + sum_m L_acc(alpha_m)]

Hyperparameters: annealing_epochs = 10 (paper: lambda_t = min(1, t/10)); evidence =
softplus (authors' code). Optimiser and lr come from the run's TrainConfig.

Where we differ from the authors' code:
- their ICLR training script anneals over `--lambda-epochs` = 50 epochs; we use the
  paper's 10 (option `annealing_epochs`). Their epoch counter starts at 1: `annealing_weight`
  uses t = epoch + 1 (our trainer counts from 0), so the first epoch has lambda = 1/10 as theirs.
- their classifiers are MLPs ending in Softplus on fixed features; ours are one linear
  head per modality on top of our trainable encoders (the "sum" model structure), so TMC
  and "sum" runs with the same seed start from identical weights.
- they combine in belief form; we use the algebraically identical evidence form (*).
"""
from __future__ import annotations

from mmlab.methods.base import Method, register
from mmlab.methods.combine import tmc_combine, tmc_loss
from mmlab.methods.common import swap_fusion
from mmlab.models import build_model
from mmlab.models.fusion import SumFusion


class TMCFusion(SumFusion):
    """One linear head per modality (as "sum"); fused logits = tmc_combine(per-modality)."""

    def forward(self, feats):
        return tmc_combine(self.per_modality(feats))


@register("tmc")
class TMC(Method):
    fusion = "tmc"
    description = "TMC: per-modality Dirichlet opinions fused by Dempster-Shafer, evidential loss"

    def __init__(self, info, train_cfg, annealing_epochs: int = 10, **kw):
        if kw.get("fusion") not in (None, "tmc"):
            raise ValueError(f"method 'tmc' fuses per-modality heads by Dempster-Shafer; it takes no "
                             f"fusion={kw['fusion']!r} (drop the option)")
        kw.pop("fusion", None)
        super().__init__(info, train_cfg, **kw)
        if len(self.modalities) < 2:
            raise ValueError(f"method 'tmc' needs at least two modalities, got {self.modalities}")
        if annealing_epochs <= 0:
            raise ValueError(f"annealing_epochs must be a positive number of epochs, got {annealing_epochs}")
        self.annealing_epochs, self.epoch = annealing_epochs, 0

    def build_model(self):
        model = build_model(self.info, fusion="sum", modalities=self.modalities, **self.model_kwargs)
        return swap_fusion(model, TMCFusion, head=self.model_kwargs["head"])

    def on_epoch_start(self, trainer, epoch: int) -> None:
        self.epoch = epoch

    def loss(self, out, batch):
        return tmc_loss(out.per_modality, batch["label"], self.epoch, self.annealing_epochs)
