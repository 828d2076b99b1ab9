"""I3D: Inception-v1 inflated to 3D (Carreira & Zisserman, "Quo Vadis, Action Recognition?", 2017).

Module names mirror torchvision's GoogLeNet (``conv1``, ``inception3a.branch2.1.conv``, ...)
so that ``models/inflate.py`` maps a 2D state_dict onto it key by key.
Temporal structure as in the paper: a 7x7x7 stride-2 stem, no temporal pooling before
``maxpool3`` (3x3x3, stride 2) and ``maxpool4`` (2x2x2, stride 2), 3x3x3 convs in the
Inception branches. Temporal padding replicates the border frames (spatial padding stays
zero), so a "boring" video — one image repeated — gives exactly the 2D network's pooled
features once the weights are inflated.
"""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.resnet import conv3d, init_weights


class Unit3d(nn.Module):
    """Conv3d (no bias) + BatchNorm (eps 1e-3, as GoogLeNet) + ReLU, replicate-padded in time."""

    def __init__(self, in_planes: int, out_planes: int, kernel: Tuple[int, int, int],
                 stride: Tuple[int, int, int] = (1, 1, 1)):
        super().__init__()
        padding = tuple(k // 2 for k in kernel)
        self.conv = conv3d(in_planes, out_planes, kernel, stride, padding, temporal_padding='replicate')
        self.bn = nn.BatchNorm3d(out_planes, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


class Inception3d(nn.Module):
    """Four branches: 1x1x1; 1x1x1 -> 3x3x3; 1x1x1 -> 3x3x3; 3x3x3 max pool -> 1x1x1."""

    def __init__(self, in_planes: int, ch1: int, ch3_reduce: int, ch3: int, ch5_reduce: int, ch5: int,
                 pool_proj: int):
        super().__init__()
        self.branch1 = Unit3d(in_planes, ch1, (1, 1, 1))
        self.branch2 = nn.Sequential(Unit3d(in_planes, ch3_reduce, (1, 1, 1)), Unit3d(ch3_reduce, ch3, (3, 3, 3)))
        # torchvision's GoogLeNet uses 3x3 (not 5x5) here; so do we, to inflate its weights
        self.branch3 = nn.Sequential(Unit3d(in_planes, ch5_reduce, (1, 1, 1)), Unit3d(ch5_reduce, ch5, (3, 3, 3)))
        self.branch4 = nn.Sequential(nn.MaxPool3d(3, stride=1, padding=1, ceil_mode=True),
                                     Unit3d(in_planes, pool_proj, (1, 1, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


# (in, 1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool proj), as GoogLeNet.
INCEPTIONS: Sequence[Tuple[str, Tuple[int, ...]]] = (
    ('inception3a', (192, 64, 96, 128, 16, 32, 32)),
    ('inception3b', (256, 128, 128, 192, 32, 96, 64)),
    ('inception4a', (480, 192, 96, 208, 16, 48, 64)),
    ('inception4b', (512, 160, 112, 224, 24, 64, 64)),
    ('inception4c', (512, 128, 128, 256, 24, 64, 64)),
    ('inception4d', (512, 112, 144, 288, 32, 64, 64)),
    ('inception4e', (528, 256, 160, 320, 32, 128, 128)),
    ('inception5a', (832, 256, 160, 320, 32, 128, 128)),
    ('inception5b', (832, 384, 192, 384, 48, 128, 128)),
)


class I3D(nn.Module):
    """Inflated Inception-v1: N x C x T x H x W clips to N x n_classes logits."""

    def __init__(self, n_classes: int = 400, n_input_channels: int = 3, conv1_t_size: int = 7,
                 conv1_t_stride: int = 2, dropout: float = 0.5):
        super().__init__()
        self.conv1 = Unit3d(n_input_channels, 64, (conv1_t_size, 7, 7), (conv1_t_stride, 2, 2))
        self.maxpool1 = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), ceil_mode=True)
        self.conv2 = Unit3d(64, 64, (1, 1, 1))
        self.conv3 = Unit3d(64, 192, (3, 3, 3))
        self.maxpool2 = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), ceil_mode=True)
        for name, cfg in INCEPTIONS[:2]:
            self.add_module(name, Inception3d(*cfg))
        self.maxpool3 = nn.MaxPool3d(3, stride=2, ceil_mode=True)
        for name, cfg in INCEPTIONS[2:7]:
            self.add_module(name, Inception3d(*cfg))
        self.maxpool4 = nn.MaxPool3d(2, stride=2, ceil_mode=True)
        for name, cfg in INCEPTIONS[7:]:
            self.add_module(name, Inception3d(*cfg))
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, n_classes)
        init_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x T x H x W clips to N x 1024 globally pooled features (the input of ``fc``)."""
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.inception3b(self.inception3a(x))
        x = self.maxpool3(x)
        for name in ('inception4a', 'inception4b', 'inception4c', 'inception4d', 'inception4e'):
            x = getattr(self, name)(x)
        x = self.maxpool4(x)
        x = self.inception5b(self.inception5a(x))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.forward_features(x)))
