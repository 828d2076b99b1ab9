"""Pre-activation 3D ResNet: BN and ReLU before each conv, the shortcut takes the raw input.

Like the original, there is no final BN + ReLU before pooling and no ReLU after the sum.
Key order per block is bn1, conv1, bn2, conv2 (bn3, conv3), downsample.
"""
from typing import Any, Optional

import torch
import torch.nn as nn

from models.resnet import RESNET_LAYERS, ResNet, conv1x1x1, conv3x3x3


class PreActBasicBlock(nn.Module):
    """BN-ReLU-conv3x3x3 (strided), BN-ReLU-conv3x3x3, plus the shortcut."""
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, temporal_padding: str = 'zeros'):
        super().__init__()
        self.bn1 = nn.BatchNorm3d(in_planes)
        self.conv1 = conv3x3x3(in_planes, planes, stride, temporal_padding=temporal_padding)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv2 = conv3x3x3(planes, planes, temporal_padding=temporal_padding)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return out + identity


class PreActBottleneck(nn.Module):
    """BN-ReLU-conv1x1x1, BN-ReLU-conv3x3x3 (strided), BN-ReLU-conv1x1x1, plus the shortcut."""
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, temporal_padding: str = 'zeros'):
        super().__init__()
        self.bn1 = nn.BatchNorm3d(in_planes)
        self.conv1 = conv1x1x1(in_planes, planes)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv2 = conv3x3x3(planes, planes, stride, temporal_padding=temporal_padding)
        self.bn3 = nn.BatchNorm3d(planes)
        self.conv3 = conv1x1x1(planes, planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + identity


def preresnet(depth: int, **kwargs: Any) -> ResNet:
    """Pre-activation 3D ResNet of the given depth; kwargs go to ``ResNet``."""
    kind, layers = RESNET_LAYERS[depth]
    return ResNet(PreActBasicBlock if kind == 'basic' else PreActBottleneck, layers, **kwargs)
