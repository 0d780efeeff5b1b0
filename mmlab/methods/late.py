"""Late fusion: each modality has its own encoder and head, trained independently
(the loss is the sum of per-modality cross-entropies over disjoint parameters, which is
the same as training each alone), and at test the softmax outputs are averaged.

Under a missing-modality protocol (batch["mask"]) each modality's cross-entropy counts only
the samples that have it, and the test-time average runs over the present modalities.
"""
import torch
import torch.nn.functional as F

from mmlab.methods.base import Method, register


@register("late")
class Late(Method):
    fusion = "late"
    description = "independent unimodal models, softmax outputs averaged at test"

    def loss(self, out, batch):
        y, mask, order = batch["label"], batch.get("mask"), self.info.modality_names
        losses = []
        for m, z in out.per_modality.items():
            keep = None if mask is None else mask[:, order.index(m)]
            if keep is None:
                losses.append(F.cross_entropy(z, y))
            elif keep.any():
                losses.append(F.cross_entropy(z[keep], y[keep]))
        return torch.stack(losses).sum()
