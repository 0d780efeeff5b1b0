"""Modality imbalance measures: MIR and DMC (ReconBoost, Appendix D.3) and the
"joint-only" per-modality accuracy of a trained joint model.

MIR(i, j) = Acc_i / Acc_j for strong modality i and weak modality j (Eq. 26/27), with the
accuracies of linear probes on the (frozen) encoders. DMC(i, j) = MIR_mul / MIR_uni (Eq. 28).
For three modalities Eq. 29 takes the cube root of a product over modality pairs. Read
literally over *ordered* pairs the product is identically 1 (DMC(m,n) * DMC(n,m) = 1), so
we take each unordered pair once, oriented strong -> weak by the unimodal accuracy, and
the cube root of the three values: the geometric mean the paper describes.

Ties (the paper does not define them): when two modalities are equally accurate alone,
the pair is oriented by the multimodal accuracies instead (the modality that ends up
stronger under joint training is "strong"), so that pair's DMC = MIR_mul >= 1: any gap
joint training opens between equally strong modalities counts as competition, whatever
the modalities are called. (Orienting by name would give DMC or 1/DMC depending on the
alphabet.) If both accuracies tie, the pair's DMC is 1 either way.
"""
from __future__ import annotations

from itertools import combinations
from typing import Dict

import numpy as np
import torch


def mir(acc_strong: float, acc_weak: float) -> float:
    if acc_weak <= 0:
        raise ValueError(f"MIR needs a positive weak-modality accuracy, got {acc_weak}")
    return acc_strong / acc_weak


def _pairs(uni: Dict[str, float], mul: Dict[str, float]):
    """Unordered modality pairs, each as (strong, weak) by unimodal accuracy; a tie is
    broken by the multimodal accuracy (module docstring)."""
    for a, b in combinations(sorted(uni), 2):
        yield (a, b) if (uni[a], mul[a]) >= (uni[b], mul[b]) else (b, a)


def dmc(uni: Dict[str, float], mul: Dict[str, float]) -> float:
    """Degree of modality competition; geometric mean over pairs for > 2 modalities."""
    if set(uni) != set(mul) or len(uni) < 2:
        raise ValueError(f"DMC needs the same >= 2 modalities in both, got {sorted(uni)} and {sorted(mul)}")
    vals = [mir(mul[s], mul[w]) / mir(uni[s], uni[w]) for s, w in _pairs(uni, mul)]
    return float(np.exp(np.mean(np.log(vals))))


def mir_table(uni: Dict[str, float], mul: Dict[str, float]) -> dict:
    """MIR_uni, MIR_mul (geometric mean over pairs) and DMC, as in ReconBoost Table 11."""
    pairs = list(_pairs(uni, mul))
    gm = lambda xs: float(np.exp(np.mean(np.log(xs))))
    return {"mir_uni": gm([mir(uni[s], uni[w]) for s, w in pairs]),
            "mir_mul": gm([mir(mul[s], mul[w]) for s, w in pairs]),
            "dmc": dmc(uni, mul)}


@torch.no_grad()
def joint_only_accuracy(model, loader, predict=None) -> Dict[str, float]:
    """Accuracy of the trained joint model when only modality m is present, per modality:
    the model's fused prediction on a batch whose mask marks the other modalities absent
    (MultimodalNet.encode zeroes their features; a method whose fusion skips absent
    modalities, e.g. MLA's, leaves them out). `predict(model, batch)` is the method's own
    test-time prediction (default: the model's forward). Under a missing-modality protocol
    only the samples that have m count. For feature-level fusions this is the fused logits
    with every other modality's features zeroed: it measures how much the fusion head uses m,
    which is often a larger loss than the encoder's own."""
    model.eval()
    predict = predict or (lambda net, batch: net(batch))
    order = model.mask_order
    correct, n = {m: 0 for m in model.modalities}, {m: 0 for m in model.modalities}
    for batch in loader:
        y = batch["label"]
        have = batch.get("mask")
        if have is None:
            have = torch.ones(len(y), len(order), dtype=torch.bool, device=y.device)
        for m in model.modalities:
            only = torch.zeros_like(have)
            only[:, order.index(m)] = have[:, order.index(m)]
            z = predict(model, {**batch, "mask": only}).logits
            keep = only[:, order.index(m)]
            correct[m] += int(((z.argmax(1) == y) & keep).sum())
            n[m] += int(keep.sum())
    return {m: correct[m] / max(n[m], 1) for m in model.modalities}
