"""Encoders by name. Each maps one modality's batch to features [B, out_dim]."""
from __future__ import annotations

import torch
from torch import nn

from mmlab.registry import Registry

ENCODERS: Registry = Registry("encoder")
register_encoder = ENCODERS.register


@register_encoder("cnn4")
class CNN4(nn.Module):
    """4-conv-layer CNN for 28x28 images (ERL-MR's CGM encoder): [B, C, 28, 28] -> [B, D].

    BatchNorm is off by default: with it, a quick trial showed the gray encoder was
    barely hurt by joint training on CGM; without it the dominated encoder is suppressed.
    """

    def __init__(self, in_channels: int = 1, out_dim: int = 128, width: int = 32,
                 batchnorm: bool = False, pool: str = "flatten"):
        super().__init__()
        chans = [in_channels, width, width, 2 * width, 2 * width]
        layers = []
        for i in range(4):  # strides 1,2,1,2: 28 -> 28 -> 14 -> 14 -> 7
            layers.append(nn.Conv2d(chans[i], chans[i + 1], 3, stride=1 + i % 2, padding=1))
            if batchnorm:
                layers.append(nn.BatchNorm2d(chans[i + 1]))
            layers.append(nn.ReLU(inplace=True))
        self.conv = nn.Sequential(*layers)
        if pool not in ("flatten", "avg"):
            raise ValueError(f"pool must be 'flatten' or 'avg', got {pool!r}")
        self.pool = pool
        # flatten keeps where strokes are (learns MNIST in a few hundred steps); a global
        # average pool discards it and learns several times slower
        self.proj = nn.Linear(2 * width * (49 if pool == "flatten" else 1), out_dim)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)                            # [B, 2w, 7, 7]
        h = h.flatten(1) if self.pool == "flatten" else h.mean(dim=(2, 3))
        return torch.relu(self.proj(h))


@register_encoder("conv1d")
class Conv1DEncoder(nn.Module):
    """Temporal CNN for sequences [B, T, C] (MFCC frames, IMU windows) -> [B, D]."""

    def __init__(self, in_channels: int, out_dim: int = 128, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(in_channels, width, 5, padding=2), nn.ReLU(inplace=True),
            nn.Conv1d(width, width, 5, stride=2, padding=2), nn.ReLU(inplace=True),
            nn.Conv1d(width, 2 * width, 3, padding=1), nn.ReLU(inplace=True))
        self.proj = nn.Linear(4 * width, out_dim)   # mean- and max-pool concatenated
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x.transpose(1, 2))              # [B, C, T] -> [B, 2w, T/2]
        h = torch.cat([h.mean(-1), h.amax(-1)], dim=1)
        return torch.relu(self.proj(h))


@register_encoder("gru")
class GRUEncoder(nn.Module):
    """GRU over sequences [B, T, C]; the last hidden state is the feature [B, D]."""

    def __init__(self, in_channels: int, out_dim: int = 128, layers: int = 1):
        super().__init__()
        self.gru = nn.GRU(in_channels, out_dim, num_layers=layers, batch_first=True)
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, h = self.gru(x)                          # h: [layers, B, D]
        return h[-1]


@register_encoder("mlp")
class MLPEncoder(nn.Module):
    """Two-layer MLP for feature vectors [B, in_dim] -> [B, D]."""

    def __init__(self, in_dim: int, out_dim: int = 128, hidden: int = 256, dropout: float = 0.0):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True),
                                 nn.Dropout(dropout), nn.Linear(hidden, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
