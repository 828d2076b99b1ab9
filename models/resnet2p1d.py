"""R(2+1)D: every 3x3x3 conv of the 3D ResNet factorised into 1xkxk spatial and kx1x1 temporal.

Key names follow the original (``conv1_s``/``bn1_s``/``conv1_t``/``bn1_t`` in the stem and
``convN_s``/``bnN_s``/``convN_t``/``bnN_t`` in blocks). The mid-plane width of each pair
matches the parameter count of the 3D conv it replaces. Two options reproduce torchvision's
``r2plus1d_18`` instead: ``mid_planes_rule='block'`` (one width per block from its input and
output channels) and a fixed ``stem_mid_planes`` (45 in torchvision).
"""
from typing import Any, Optional

import torch
import torch.nn as nn

from models.resnet import RESNET_LAYERS, ResNet, conv1x1x1, conv3d

MID_PLANES_RULES = ('conv', 'block')


def mid_planes(in_planes: int, out_planes: int, t_size: int = 3, k_size: int = 3) -> int:
    """Width of the (2+1)D pair with the parameter count of a t x k x k 3D conv (floored)."""
    return (in_planes * out_planes * t_size * k_size * k_size) // (
        in_planes * k_size * k_size + t_size * out_planes)


def conv1x3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv3d:
    """Spatial half: stride (1, s, s)."""
    return nn.Conv3d(in_planes, out_planes, kernel_size=(1, 3, 3), stride=(1, stride, stride),
                     padding=(0, 1, 1), bias=False)


def conv3x1x1(in_planes: int, out_planes: int, stride: int = 1, temporal_padding: str = 'zeros') -> nn.Conv3d:
    """Temporal half: stride (s, 1, 1)."""
    return conv3d(in_planes, out_planes, (3, 1, 1), (stride, 1, 1), (1, 0, 0), temporal_padding=temporal_padding)


def _check_rule(rule: str) -> None:
    if rule not in MID_PLANES_RULES:
        raise ValueError(f"r2p1d_mid_planes must be one of {', '.join(MID_PLANES_RULES)}, not {rule!r}")


class BasicBlock2p1d(nn.Module):
    """Two (2+1)D convs; the first pair carries the stride."""
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, mid_planes_rule: str = 'conv',
                 temporal_padding: str = 'zeros'):
        super().__init__()
        _check_rule(mid_planes_rule)
        mid1 = mid_planes(in_planes, planes)
        mid2 = mid1 if mid_planes_rule == 'block' else mid_planes(planes, planes)
        self.conv1_s = conv1x3x3(in_planes, mid1, stride)
        self.bn1_s = nn.BatchNorm3d(mid1)
        self.conv1_t = conv3x1x1(mid1, planes, stride, temporal_padding)
        self.bn1_t = nn.BatchNorm3d(planes)
        self.conv2_s = conv1x3x3(planes, mid2)
        self.bn2_s = nn.BatchNorm3d(mid2)
        self.conv2_t = conv3x1x1(mid2, planes, temporal_padding=temporal_padding)
        self.bn2_t = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1_s(self.conv1_s(x)))
        out = self.relu(self.bn1_t(self.conv1_t(out)))
        out = self.relu(self.bn2_s(self.conv2_s(out)))
        out = self.bn2_t(self.conv2_t(out))
        return self.relu(out + identity)


class Bottleneck2p1d(nn.Module):
    """1x1x1 reduce, (2+1)D pair (carries the stride), 1x1x1 expand."""
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, mid_planes_rule: str = 'conv',
                 temporal_padding: str = 'zeros'):
        super().__init__()
        _check_rule(mid_planes_rule)
        mid = mid_planes(in_planes if mid_planes_rule == 'block' else planes, planes)
        self.conv1 = conv1x1x1(in_planes, planes)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2_s = conv1x3x3(planes, mid, stride)
        self.bn2_s = nn.BatchNorm3d(mid)
        self.conv2_t = conv3x1x1(mid, planes, stride, temporal_padding)
        self.bn2_t = nn.BatchNorm3d(planes)
        self.conv3 = conv1x1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2_s(self.conv2_s(out)))
        out = self.relu(self.bn2_t(self.conv2_t(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet2p1d(ResNet):
    """The ResNet trunk with a factorised stem (1x7x7 spatial, then t x 1 x 1 temporal)."""

    def __init__(self, *args: Any, stem_mid_planes: int = 0, **kwargs: Any):
        self.stem_mid_planes = stem_mid_planes
        super().__init__(*args, **kwargs)

    def _make_stem(self, n_input_channels: int, planes: int, t_size: int, t_stride: int) -> None:
        # The original used 3 here whatever the input; the real channel count is the fix
        # (identical for RGB).
        mid = self.stem_mid_planes or mid_planes(n_input_channels, planes, t_size, 7)
        self.conv1_s = nn.Conv3d(n_input_channels, mid, kernel_size=(1, 7, 7), stride=(1, 2, 2),
                                 padding=(0, 3, 3), bias=False)
        self.bn1_s = nn.BatchNorm3d(mid)
        self.conv1_t = conv3d(mid, planes, (t_size, 1, 1), (t_stride, 1, 1), (t_size // 2, 0, 0),
                              temporal_padding=self.temporal_padding)
        self.bn1_t = nn.BatchNorm3d(planes)

    def _forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1_s(self.conv1_s(x)))
        return self.relu(self.bn1_t(self.conv1_t(x)))


def resnet2p1d(depth: int, mid_planes_rule: str = 'conv', stem_mid_planes: int = 0,
               **kwargs: Any) -> ResNet2p1d:
    """R(2+1)D of the given depth; kwargs go to ``ResNet``."""
    _check_rule(mid_planes_rule)
    if stem_mid_planes < 0:
        raise ValueError(f"r2p1d_stem_mid_planes must be >= 0 (0: parameter-matching formula), not {stem_mid_planes}")
    kind, layers = RESNET_LAYERS[depth]
    block = BasicBlock2p1d if kind == 'basic' else Bottleneck2p1d
    return ResNet2p1d(block, layers, stem_mid_planes=stem_mid_planes,
                      block_kwargs={'mid_planes_rule': mid_planes_rule}, **kwargs)
