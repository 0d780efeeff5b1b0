"""MultimodalNet: one encoder per modality, then a fusion module that yields logits."""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from torch import nn

from mmlab.models.encoders import ENCODERS
from mmlab.models.fusion import FUSIONS


@dataclass
class ModelOutput:
    logits: torch.Tensor                      # [B, C] fused
    per_modality: Dict[str, torch.Tensor]     # modality -> [B, C]
    features: Dict[str, torch.Tensor]         # modality -> [B, D_m]


class MultimodalNet(nn.Module):
    def __init__(self, encoders: Dict[str, nn.Module], fusion: nn.Module, mask_order=None):
        super().__init__()
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = fusion
        self.modalities = list(encoders)
        # column order of batch["mask"]: the dataset's modality order
        self.mask_order = list(mask_order or self.modalities)

    def encode(self, batch: dict, modalities=None) -> Dict[str, torch.Tensor]:
        """Features per modality, [B, D_m]; a modality absent for a sample (batch["mask"],
        [B, M] in the dataset's modality order) has its features zeroed."""
        feats = {m: self.encoders[m](batch[m]) for m in (modalities or self.modalities)}
        mask: Optional[torch.Tensor] = batch.get("mask")
        if mask is not None:
            if mask.shape[1] != len(self.mask_order):
                raise ValueError(f"batch['mask'] has {mask.shape[1]} columns; expected one per dataset "
                                 f"modality {self.mask_order} (build MissingModality with all of them)")
            for m in feats:
                col = mask[:, self.mask_order.index(m)]      # [B] bool, True = present
                feats[m] = feats[m] * col.unsqueeze(1).to(feats[m].dtype)
        return feats

    def present(self, batch: dict, modalities=None) -> Optional[torch.Tensor]:
        """Bool[B, M] presence of `modalities` (default: the model's) from batch["mask"], or None."""
        mask = batch.get("mask")
        if mask is None:
            return None
        return mask[:, [self.mask_order.index(m) for m in (modalities or self.modalities)]]

    def head(self, feats: Dict[str, torch.Tensor], present: Optional[torch.Tensor] = None) -> ModelOutput:
        """Fused and per-modality logits. A fusion that can leave absent modalities out (its
        forward takes `present`, Bool[B, M]: late fusion, QMF, shared heads) gets the mask;
        the others see the absent modalities' zeroed features."""
        fused = self.fusion(feats, present=present) if present is not None and self.fusion.masks else self.fusion(feats)
        return ModelOutput(fused, self.fusion.per_modality(feats), feats)

    def forward(self, batch: dict) -> ModelOutput:
        return self.head(self.encode(batch), self.present(batch))


def build_model(info, fusion: str = "concat", modalities=None, encoders: Optional[dict] = None,
                feature_dim: int = 128, head: str = "linear", encoder_options: Optional[dict] = None,
                fusion_options: Optional[dict] = None) -> MultimodalNet:
    """Build encoders for `modalities` (default: all of the dataset's) and a fusion.

    info: a DatasetInfo; encoders overrides the default encoder name per modality
    (e.g. {"audio": "gru"}); encoder_options adds kwargs per modality.
    """
    modalities = list(modalities or info.modality_names)
    for m in modalities:
        if m not in info.modalities:
            raise KeyError(f"dataset {info.name!r} has no modality {m!r}; it has {info.modality_names}")
    if fusion in ("film", "gated", "concat", "sum", "late") and len(modalities) < 2:
        raise ValueError(f"fusion {fusion!r} needs at least two modalities, got {modalities}")
    encs = {}
    for m in modalities:
        name, kwargs = info.encoders[m]
        if encoders and m in encoders:
            # another encoder: keep only the dataset's input-shape kwargs it accepts
            name = encoders[m]
            accepted = inspect.signature(ENCODERS.get(name)).parameters
            kwargs = {k: v for k, v in kwargs.items() if k in accepted}
        kwargs = {**kwargs, **((encoder_options or {}).get(m, {}))}
        kwargs.setdefault("out_dim", feature_dim)
        try:
            encs[m] = ENCODERS.get(name)(**kwargs)
        except TypeError as e:
            raise TypeError(f"encoder {name!r} for modality {m!r} of {info.name!r} (input shape "
                            f"{info.modalities[m]}): {e}; pass its arguments with "
                            f"encoder_options={{{m!r}: {{...}}}}") from None
    dims = {m: e.out_dim for m, e in encs.items()}
    try:
        fused = FUSIONS.get(fusion)(dims, info.num_classes, head=head, **(fusion_options or {}))
    except TypeError as e:
        raise TypeError(f"fusion {fusion!r} rejected fusion_options {fusion_options}: {e}") from None
    return MultimodalNet(encs, fused, info.modality_names)
