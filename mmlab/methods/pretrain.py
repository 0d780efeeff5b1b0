"""Encoders pretrained on data outside the benchmark's pairing: the stand-in for MLA's CLIP
experiment (Tables 4 / 7), where every method fine-tunes from pretrained encoders. Registers
no method.

`pretrained_encoders(run_config, modalities, model_kwargs, epochs)`: for each modality, the
cached, validation-selected run of method "unimodal" on the same dataset with dataset option
`pool="held_out"` (the samples the benchmark does not use; mfeat: 140 digits per class),
the same seed and architecture, Adam 1e-3 for `epochs` passes; returns {modality: encoder
state_dict}. Trained once and shared by every method that asks (mmlab.runner.trained). This
is not CLIP: it is a small encoder pretrained unimodally on more data of the same kind,
which is the situation Tables 4 / 7 test (a strong pretrained encoder per modality).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Dict


def pretrain_config(run_config, modality: str, model_kwargs: dict, epochs: int):
    """The RunConfig of modality's pretraining run."""
    opts = {k: v for k, v in model_kwargs.items() if v is not None}
    return replace(run_config, method="unimodal", epochs=epochs, optimizer="adam", lr=1e-3, weight_decay=0.0,
                   lr_step=None, missing_rate=0.0, train_missing={}, train_subset=None, probe=False,
                   dataset_options={**run_config.dataset_options, "pool": "held_out"},
                   method_options={"modality": modality, **opts})


def pretrained_encoders(run_config, modalities, model_kwargs: dict, epochs: int) -> Dict[str, dict]:
    if run_config is None:
        raise ValueError("pretrained=True needs a run of mmlab.runner (it reuses cached pretraining runs); "
                         "train through mmlab.run / the CLI, not a bare Trainer")
    from mmlab.runner import trained
    out = {}
    for m in modalities:
        _, model, _ = trained(pretrain_config(run_config, m, model_kwargs, epochs))
        out[m] = model.encoders[m].state_dict()
    return out
