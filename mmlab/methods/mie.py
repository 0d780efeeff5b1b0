"""MIE: Multimodal classification via Modal-aware Interactive Enhancement (Jiang, Chi, Yang; 2024).

Each modality j has its own encoder and head FC(D x 256) -> ReLU -> FC(256 x 64) -> FC(64 x C)
(head "mlp3", layers fc1 / fc2 / fc3). Training alternates modality phases (Algorithm 1): per
epoch, modality after modality, one pass over the training data trains modality j alone:

- SAM (Eq. 2-4, p = 2): the gradient of j's loss is taken at theta + rho g/||g|| and the weights
  restored before the step (mmlab.methods.sam). `rho` per modality (a number or {modality:
  rho}); the default "paper" is the paper's: 1e-10 for a modality named audio, 1e-15 for any
  other (image, text, video). Those are below float32 resolution for all but the weights
  nearest zero, so SAM then moves a handful of weights by one ulp and nothing else; the
  chapters also run a rho where SAM acts.
- Gradient modification (GM, Eq. 5-8): after j's phase, one pass over the training data in
  batches of `cov_batch_size` (12, the paper's) records, for each modified layer L, the batch-mean
  input r of j's layer L and accumulates Y_L^(j) = sum_t r_t r_t^T (Eq. 5, restarted each phase).
  Its eigendecomposition (Y is symmetric PSD: its SVD) gives T_L^(j) = V diag(exp(-tau (lambda -
  lambda_min) / (lambda_max - lambda_min))) V^T (Eq. 7), weights in (0, 1], 1 on the flattest
  direction. When modality l steps, the gradient of its layer L is multiplied by the T_L of the
  other modality k (Eq. 8; W [out, in] in PyTorch, so grad <- grad T). Which modality is "the
  other": Algorithm 1 prints k = mod(i + m - 2, m) + 1 from the outer iteration alone, which
  for m = 2 would let a modality use its own T in half the iterations; the text ("the
  information of k-th modality is injected into l-th") and the issue read it as the other
  modality. We take the modality trained just before l (cyclic: with two modalities, the other).
  T starts at I. Switches: `sam`, `gm`; `gm_from` limits the modalities whose T is applied
  ("w/o v-GM" = gm_from=(audio,): only the audio model modifies the video model's gradient).
- Scope (`gm_scope`, Table 4): "head" (the paper's default: the three head layers), "none", or
  a fraction of the branch's parameters counted from the deepest layer; only Linear layers
  whose name and input width match in every modality can be modified (encoders of different
  architectures share none).
- Test time: "average" (mean of the modalities' softmax, the paper's late fusion) or "weight"
  (MLA's entropy weights, mmlab.methods.alternating).

Choices the paper leaves open: the covariance pass runs the model in eval mode (no dropout) on
the training split in its order; only weight matrices are modified (Eq. 8 names W; biases keep
their gradient); T is the identity until a modality's first phase ends; T of a layer is
recomputed once per phase (not per step), from one matmul per batch and layer.

Optimizer: one per modality over its branch (the run's settings; the paper states SGD). Each
phase steps only modality j's optimizer. The T matrices are method state (saved, restored).
The train meter of an epoch averages the phases' accuracies (each phase sees one modality), on
the logits of each step's first forward pass (before the step, as a plain training loop's).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmlab.methods.alternating import fuse
from mmlab.methods.base import Method, register
from mmlab.methods.branches import branch, branch_optimizers
from mmlab.methods.common import as_bool, check_choice, eval_mode
from mmlab.methods.sam import sam_step
from mmlab.models import build_model
from mmlab.models.capture import capture_inputs, linear_layers
from mmlab.models.fusion import Fusion
from mmlab.models.net import ModelOutput

FUSIONS_MIE = ("average", "weight")


def PAPER_RHO(modality: str) -> float:  # noqa: N802 (a constant of the paper, by modality)
    """MIE Sec. 4.2.3: rho 1e-10 for audio, 1e-15 for image / text (and any other modality)."""
    return 1e-10 if modality == "audio" else 1e-15


class MIEFusion(Fusion):
    """Per-modality heads; fused = log of the mean softmax ("average") or MLA's entropy-weighted
    logits ("weight"), over the present modalities."""
    masks = True

    def __init__(self, heads: nn.ModuleDict, dims, num_classes, rule: str = "average"):
        super().__init__(dims, num_classes)
        self.heads, self.rule = heads, rule

    def per_modality(self, feats):
        return {m: self.heads[m](feats[m]) for m in self.modalities}

    def forward(self, feats, present: Optional[Tensor] = None):
        z = self.per_modality(feats)
        if self.rule == "weight":
            return fuse(z, "entropy", "sample", present)
        logp = torch.stack([torch.log_softmax(v.float(), -1) for v in z.values()])        # [M, B, C]
        w = torch.ones(logp.shape[:2], device=logp.device) if present is None else present.T.float()
        w = w / w.sum(0, keepdim=True).clamp(min=1)
        return torch.logsumexp(logp + torch.log(w).unsqueeze(-1), 0)


def modification_matrix(y: Tensor, tau: float) -> tuple:
    """(T, eigenvalues ascending) of Eq. 7 from a cumulative covariance Y [d, d]."""
    lam, v = torch.linalg.eigh(y.double())
    lam = lam.clamp(min=0)
    span = lam.max() - lam.min()
    if span <= 0:
        return torch.eye(len(y), dtype=y.dtype, device=y.device), lam.float()
    w = torch.exp(-tau * (lam - lam.min()) / span)
    return ((v * w) @ v.T).to(y.dtype), lam.float()


@torch.no_grad()
def cumulative_covariance(method, model, data, m: str, names, batch_size: int = 12, device="cpu",
                          transform=None, chunk: int = 32) -> tuple:
    """({layer name: Y [in, in]}, number of batches): Eq. 5's Y = sum_t r_t r_t^T over the
    batches of `batch_size` samples of `data` in order, r_t the batch-mean input of each named
    layer of m's branch, with the model in eval mode (where a sample's features do not depend
    on its batch). Forward passes go `chunk` batches at a time; each is split back into its
    batches, and Y grows by one matmul R^T R per chunk and layer (R: [batches, in])."""
    from mmlab.data.base import BatchLoader
    mods = {n: dict(method.branch(model, m).named_modules())[n] for n in names}
    cov: Dict[str, Tensor] = {}
    count = 0

    def record(name, x):
        x = x.float().reshape(x.shape[0], -1, x.shape[-1]).mean(1)            # [n, in] (tokens averaged)
        r = torch.stack([c.mean(0) for c in x.split(batch_size)])             # [batches, in]
        cov[name] = cov.get(name, 0) + r.T @ r
    with eval_mode(model), capture_inputs(mods, record):
        for batch in BatchLoader(data, batch_size * chunk, device=device, transform=transform):
            method.modality_logits(model, batch, m)
            count += -(-len(batch["label"]) // batch_size)
    return cov, count


@register("mie")
class MIE(Method):
    fusion = "sum"
    description = "MIE: alternating modality phases with SAM and SVD-based gradient modification between modalities"

    def __init__(self, info, train_cfg, rho="paper", tau: float = 0.4, sam: bool = True, gm: bool = True,
                 gm_scope="head", gm_from=None, fusion_rule: str = "average", cov_batch_size: int = 12, **kw):
        if kw.get("fusion") is not None:
            raise ValueError("mie fuses its per-modality heads by fusion_rule='average'|'weight'; no fusion=")
        kw.pop("fusion", None)
        kw.setdefault("head", "mlp3")
        super().__init__(info, train_cfg, **kw)
        if len(self.modalities) < 2:
            raise ValueError(f"mie alternates between modalities and needs at least two, got {self.modalities}")
        check_choice("mie", "fusion_rule", fusion_rule, FUSIONS_MIE)
        if isinstance(rho, str) and rho != "paper":
            raise ValueError(f"mie rho must be 'paper', a number >= 0 or {{modality: number}}, got {rho!r}")
        self.rho = {m: float(rho[m] if isinstance(rho, dict) else PAPER_RHO(m) if rho == "paper" else rho)
                    for m in self.modalities}
        if min(self.rho.values()) < 0 or not tau > 0 or not (isinstance(cov_batch_size, int) and cov_batch_size >= 1):
            raise ValueError(f"mie: rho must be >= 0, tau > 0 and cov_batch_size an integer >= 1; got "
                             f"{rho!r}, {tau!r}, {cov_batch_size!r}")
        if gm_scope not in ("head", "none") and not (isinstance(gm_scope, (int, float)) and 0 <= gm_scope <= 1):
            raise ValueError(f"mie gm_scope must be 'head', 'none' or a fraction in [0, 1], got {gm_scope!r}")
        self.tau, self.sam, self.gm = float(tau), as_bool("sam", sam), as_bool("gm", gm)
        self.gm_scope, self.fusion_rule, self.cov_batch_size = gm_scope, fusion_rule, cov_batch_size
        self.gm_from = tuple(gm_from) if gm_from is not None else tuple(self.modalities)
        bad = sorted(set(self.gm_from) - set(self.modalities))
        if bad:
            raise ValueError(f"mie gm_from names modalities {bad} not among {self.modalities}")
        self.T: Dict[str, Dict[str, Tensor]] = {}        # source modality -> layer name -> [in, in]
        self.spectra: Dict[str, Dict[str, Tensor]] = {}  # source modality -> layer name -> eigenvalues
        self.stepping: Optional[str] = None

    # --- model ---------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        net = build_model(self.info, fusion="sum", modalities=self.modalities, **self.model_kwargs)
        net.fusion = MIEFusion(net.fusion.heads, net.fusion.dims, self.info.num_classes, self.fusion_rule)
        return net

    branch = staticmethod(branch)

    def configure_optimizers(self, model):
        return branch_optimizers(model, self.modalities, self.cfg)

    def modified_layers(self, model) -> list:
        """Names (within a branch) of the layers GM modifies: matching Linear layers in scope."""
        if not self.gm or self.gm_scope == "none" or self.gm_scope == 0:
            return []
        layers = [linear_layers(self.branch(model, m)) for m in self.modalities]
        common = [n for n, lin in layers[0].items()
                  if all(n in other and other[n].weight.shape == lin.weight.shape for other in layers[1:])]
        if self.gm_scope == "head":
            return [n for n in common if n.startswith("head.")]
        total = sum(p.numel() for p in self.branch(model, self.modalities[0]).parameters())
        chosen, count = [], 0
        for n in reversed(list(layers[0])):                   # deepest first
            if count >= self.gm_scope * total:
                break
            count += sum(p.numel() for p in layers[0][n].parameters())
            if n in common:
                chosen.append(n)
        return chosen

    # --- training --------------------------------------------------------------------------
    def source_of(self, m: str) -> str:
        """The modality whose T modifies m's gradients: the one trained just before m (cyclic)."""
        i = self.modalities.index(m)
        return self.modalities[i - 1]

    def train_epoch(self, trainer, loader, epoch: int) -> None:
        self.phase_log = []
        for m in self.modalities:
            for batch in trainer.progress(loader, epoch):
                self.phase_step(trainer, batch, m)
            if self.gm:
                self.update_modification(trainer, m)
            if "method" in trainer.cfg.track:                   # Fig. 3: accuracy after every phase
                val = trainer.evaluate(trainer.splits.val)
                self.phase_log.append({"phase": m, "acc": val["acc"], "per_modality": val["per_modality"]})
            trainer.model.train()

    def epoch_track(self, trainer) -> dict:
        """{"phases": [{phase, acc, per_modality}]}: validation accuracy after each modality's
        phase of the epoch (runs with track=("method",))."""
        return {"phases": list(getattr(self, "phase_log", []))}

    def modality_logits(self, model, batch: dict, m: str) -> Tensor:
        return model.fusion.heads[m](model.encoders[m](batch[m]))

    def phase_step(self, trainer, batch: dict, m: str) -> None:
        model = trainer.model
        keep = model.present(batch, [m])
        keep = None if keep is None else keep[:, 0]
        if keep is not None and not bool(keep.any()):
            return
        sub = {k: v[keep] for k, v in batch.items()} if keep is not None else batch

        seen = []                                     # the logits at theta (the first pass), for the meter

        def loss_fn():
            z = self.modality_logits(model, sub, m)
            seen.append(z.detach())
            return F.cross_entropy(z, sub["label"])
        self.stepping = m
        try:
            loss = sam_step(trainer, self.optimizers[m], self.branch(model, m).parameters(), loss_fn,
                            self.rho[m] if self.sam else 0.0)
        finally:
            self.stepping = None
        trainer.meter.update(ModelOutput(seen[0], {}, {}), sub["label"], loss)

    def update_modification(self, trainer, m: str) -> None:
        """Eq. 5-7 for modality m: cumulative covariance of each modified layer's batch-mean input
        over the training data, then T_L^(m) and its eigenvalues."""
        names = self.modified_layers(trainer.model)
        if not names:
            return
        cov, _ = cumulative_covariance(self, trainer.model, trainer.splits.train, m, names, self.cov_batch_size,
                                       trainer.device, trainer.eval_transform)
        self.T[m], self.spectra[m] = {}, {}
        for n, y in cov.items():
            self.T[m][n], self.spectra[m][n] = modification_matrix(y, self.tau)

    def on_after_backward(self, trainer, optimizer) -> None:
        m = self.stepping
        if m is None or not self.gm:
            return
        k = self.source_of(m)
        if k not in self.gm_from or k not in self.T:
            return
        layers = dict(self.branch(trainer.model, m).named_modules())
        for n, t in self.T[k].items():
            g = layers[n].weight.grad                                             # [out, in]
            if g is not None:
                g.copy_(g.float() @ t.to(g.device))

    # --- state -------------------------------------------------------------------------------
    def extra_state(self) -> dict:
        return {"T": {m: {n: t.cpu() for n, t in d.items()} for m, d in self.T.items()},
                "spectra": {m: {n: s.cpu() for n, s in d.items()} for m, d in self.spectra.items()}}

    def load_extra_state(self, state: dict) -> None:
        self.T = {m: dict(d) for m, d in state.get("T", {}).items()}
        self.spectra = {m: dict(d) for m, d in state.get("spectra", {}).items()}


# --- analyses of a trained model (mmlab.runner.analysis: cached per run) -------------------------
def head_spectra(method, model, splits, batch_size: int = 12) -> list:
    """Tables 5 / 7: per modality and modified layer, the max and mean eigenvalue (= singular
    value: Y is symmetric PSD) of the cumulative covariance Y over the training data, raw and
    normalised (Y / number of batches: a mean instead of a sum; the paper's normalising
    constant is not stated). T is unchanged by any such scaling (Eq. 7)."""
    names = method.modified_layers(model) or ["head.fc1", "head.fc2", "head.fc3"]
    rows = []
    for m in method.modalities:
        cov, count = cumulative_covariance(method, model, splits.train, m, names, batch_size)
        for n, y in cov.items():
            lam = torch.linalg.eigvalsh(y.double()).clamp(min=0)
            rows.append({"modality": m, "layer": n, "max": float(lam.max()), "mean": float(lam.mean()),
                         "max_normalised": float(lam.max()) / count, "mean_normalised": float(lam.mean()) / count,
                         "batches": count})
    return rows


@torch.no_grad()
def rule_metrics(method, model, splits, rule: str = "weight") -> dict:
    """Test acc / mAP / macro-F1 of a trained MIE model fused by `rule` ("average" | "weight"):
    the fusion acts at test time only, so Table 1's two MIE rows are one trained model."""
    from mmlab.analysis.metrics import classification_metrics
    from mmlab.data.base import BatchLoader
    check_choice("mie", "rule", rule, FUSIONS_MIE)
    saved, model.fusion.rule = model.fusion.rule, rule
    try:
        logits, ys = [], []
        for batch in BatchLoader(splits.test, 256):
            logits.append(method.predict(model, batch).logits.float())
            ys.append(batch["label"])
    finally:
        model.fusion.rule = saved
    return classification_metrics(torch.cat(logits).numpy(), torch.cat(ys).numpy())
