"""Encoders, fusions, heads and the MultimodalNet, all registered by name."""
from mmlab.models.encoders import ENCODERS, register_encoder, CNN4, Conv1DEncoder, GRUEncoder, MLPEncoder
from mmlab.models.resnet import ResNet18, resnet_encoders, use_channels_last
from mmlab.models.fusion import FUSIONS, HEADS
from mmlab.models import mmtm as _mmtm  # noqa: F401  (registers the "mmtm" fusion)
from mmlab.models.net import ModelOutput, MultimodalNet, build_model

__all__ = ["ENCODERS", "FUSIONS", "HEADS", "register_encoder", "CNN4", "Conv1DEncoder", "GRUEncoder",
           "MLPEncoder", "ResNet18", "resnet_encoders", "use_channels_last", "ModelOutput", "MultimodalNet",
           "build_model"]
