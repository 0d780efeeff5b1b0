"""ResNet-18 (He et al. 2016), written here because torchvision is not cheaply installable.

Same layout and parameter count as torchvision's resnet18 (11,689,512 with a 1000-way fc
and 3 input channels); `in_channels` is configurable (1 for spectrograms, as the
audio-visual papers use). As an encoder it returns the 512-d pooled feature.

channels-last (`use_channels_last`): the weights and every 4-D input in NHWC memory order,
which cuDNN's tensor-core convolutions prefer under AMP (the Trainer turns it on for CUDA
runs with a ResNet encoder, TrainConfig.channels_last). The numbers are the same up to the
order of floating-point sums.
"""
from __future__ import annotations

import torch
from torch import nn

from mmlab.models.encoders import register_encoder


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.down is None else self.down(x)))


@register_encoder("resnet18")
class ResNet18(nn.Module):
    """[B, C, H, W] -> [B, 512] (or logits [B, num_classes] if num_classes is given)."""

    channels_last = False       # set by use_channels_last: inputs converted to NHWC in forward

    def __init__(self, in_channels: int = 3, out_dim: int = 512, num_classes: int | None = None):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        widths, blocks, cin = [64, 128, 256, 512], [], 64
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks += [BasicBlock(cin, w, stride), BasicBlock(w, w, 1)]
            cin = w
        self.layers = nn.Sequential(*blocks)
        self.proj = nn.Identity() if out_dim == 512 else nn.Linear(512, out_dim)
        self.fc = None if num_classes is None else nn.Linear(out_dim, num_classes)
        self.out_dim = out_dim if num_classes is None else num_classes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)   # [B, C, H, W], NHWC strides
        h = self.layers(self.stem(x)).mean(dim=(2, 3))   # [B, 512]
        h = self.proj(h)
        return h if self.fc is None else self.fc(h)


def resnet_encoders(model: nn.Module) -> list:
    """The ResNet18 modules inside `model` (itself included)."""
    return [m for m in model.modules() if isinstance(m, ResNet18)]


def use_channels_last(model: nn.Module) -> int:
    """Put every ResNet18 inside `model` in channels-last memory order (its 4-D conv weights
    now, its 4-D inputs at each forward); returns how many were converted. Other modules
    keep their layout."""
    nets = resnet_encoders(model)
    for net in nets:
        net.to(memory_format=torch.channels_last)
        net.channels_last = True
    return len(nets)
