"""Late fusion: each modality has its own encoder and head, trained independently
(the loss is the sum of per-modality cross-entropies over disjoint parameters, which is
the same as training each alone), and at test the softmax outputs are averaged.
"""
import torch
import torch.nn.functional as F

from mmlab.methods.base import Method, register


@register("late")
class Late(Method):
    fusion = "late"
    description = "independent unimodal models, softmax outputs averaged at test"

    def loss(self, out, batch):
        y = batch["label"]
        return torch.stack([F.cross_entropy(z, y) for z in out.per_modality.values()]).sum()
