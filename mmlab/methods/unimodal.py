"""Unimodal baseline: one modality's encoder and a linear head, trained alone.

Its accuracy is the reference each joint method's per-modality accuracy is compared with
(the "Uni-train" rows of ReconBoost Table 11, ERL-MR's gray/colored rows).
"""
from mmlab.methods.base import Method, register


@register("unimodal")
class Unimodal(Method):
    fusion = "single"
    description = "one modality alone (option: modality=NAME)"

    def __init__(self, info, train_cfg, modality: str | None = None, **kw):
        if modality is None:
            raise ValueError(f"method 'unimodal' needs modality=...; dataset {info.name!r} "
                             f"has {info.modality_names} (CLI: --modality NAME)")
        if modality not in info.modalities:
            raise KeyError(f"dataset {info.name!r} has no modality {modality!r}; "
                           f"it has {info.modality_names}")
        kw.pop("modalities", None)
        super().__init__(info, train_cfg, modalities=[modality], **kw)
        self.modality = modality
