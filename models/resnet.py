"""3D ResNet ("r3d"): BasicBlock for depths 10-34, Bottleneck for 50-200.

Module and parameter names follow the original 3D-ResNets-PyTorch so that its released
state_dicts load with ``strict=True``. PreAct, Wide and ResNeXt variants reuse the
``ResNet`` trunk with their own blocks (see their modules).
"""
from typing import Any, Dict, List, Optional, Sequence, Type

import torch
import torch.nn as nn
import torch.nn.functional as F

BLOCK_INPLANES = (64, 128, 256, 512)


TEMPORAL_PADDINGS = ('zeros', 'replicate')


class ReplicateTimeConv3d(nn.Conv3d):
    """Conv3d whose temporal padding repeats the border frames; spatial padding stays zero.

    With it a video that repeats one image stays constant in time through the network, so 2D
    weights inflated over time reproduce the 2D network exactly (the I3D "boring video").
    Parameter names are those of nn.Conv3d.
    """

    def __init__(self, *args: Any, padding: Any = 0, **kwargs: Any):
        pt, ph, pw = (padding,) * 3 if isinstance(padding, int) else padding
        super().__init__(*args, padding=(0, ph, pw), **kwargs)
        self.time_pad = pt

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.time_pad:
            x = F.pad(x, (0, 0, 0, 0, self.time_pad, self.time_pad), mode='replicate')
        return super().forward(x)


def conv3d(in_planes: int, out_planes: int, kernel_size: Any, stride: Any = 1, padding: Any = 0,
           groups: int = 1, temporal_padding: str = 'zeros') -> nn.Conv3d:
    """Bias-free Conv3d; ``temporal_padding`` 'replicate' pads time with the border frames."""
    if temporal_padding not in TEMPORAL_PADDINGS:
        raise ValueError(f"temporal_padding must be one of {', '.join(TEMPORAL_PADDINGS)}, not {temporal_padding!r}")
    cls = ReplicateTimeConv3d if temporal_padding == 'replicate' else nn.Conv3d
    return cls(in_planes, out_planes, kernel_size=kernel_size, stride=stride, padding=padding, groups=groups,
               bias=False)


def conv3x3x3(in_planes: int, out_planes: int, stride: int = 1, groups: int = 1,
              temporal_padding: str = 'zeros') -> nn.Conv3d:
    """3x3x3 convolution with padding 1 and no bias."""
    return conv3d(in_planes, out_planes, 3, stride, 1, groups, temporal_padding)


def conv1x1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv3d:
    """1x1x1 convolution with no bias."""
    return nn.Conv3d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class ZeroPadShortcut(nn.Module):
    """Shortcut type A: strided subsampling, then zero channels appended.

    Parameter-free, so it adds no state_dict keys. Unlike the original (which detached
    the tensor), gradients flow through the identity part.
    """

    def __init__(self, out_planes: int, stride: int):
        super().__init__()
        self.out_planes = out_planes
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stride
        if s != 1:
            x = x[:, :, ::s, ::s, ::s]
        extra = self.out_planes - x.shape[1]
        # F.pad pads dimensions from the last backwards: (W, H, T, C) pairs.
        return F.pad(x, (0, 0, 0, 0, 0, 0, 0, extra)) if extra > 0 else x


def make_shortcut(shortcut_type: str, in_planes: int, out_planes: int, stride: int) -> nn.Module:
    """Shortcut A (parameter-free) or B (1x1x1 conv + BN, keys downsample.0/1)."""
    if shortcut_type == 'A':
        return ZeroPadShortcut(out_planes, stride)
    return nn.Sequential(conv1x1x1(in_planes, out_planes, stride), nn.BatchNorm3d(out_planes))


class BasicBlock(nn.Module):
    """Two 3x3x3 convs; the first carries the stride."""
    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, temporal_padding: str = 'zeros'):
        super().__init__()
        self.conv1 = conv3x3x3(in_planes, planes, stride, temporal_padding=temporal_padding)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = conv3x3x3(planes, planes, temporal_padding=temporal_padding)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1x1 reduce, 3x3x3 (carries the stride, optionally grouped), 1x1x1 expand."""
    expansion = 4

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, width: Optional[int] = None,
                 groups: int = 1, temporal_padding: str = 'zeros'):
        super().__init__()
        width = planes if width is None else width
        self.conv1 = conv1x1x1(in_planes, width)
        self.bn1 = nn.BatchNorm3d(width)
        self.conv2 = conv3x3x3(width, width, stride, groups=groups, temporal_padding=temporal_padding)
        self.bn2 = nn.BatchNorm3d(width)
        self.conv3 = conv1x1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm3d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """Stem, four stages (strides 1, 2, 2, 2 in T, H and W), global average pool, ``fc``."""

    def __init__(self, block: Type[nn.Module], layers: Sequence[int],
                 block_inplanes: Sequence[int] = BLOCK_INPLANES, n_input_channels: int = 3,
                 conv1_t_size: int = 7, conv1_t_stride: int = 1, no_max_pool: bool = False,
                 shortcut_type: str = 'B', widen_factor: float = 1.0, n_classes: int = 400,
                 block_kwargs: Optional[Dict[str, Any]] = None, temporal_padding: str = 'zeros'):
        super().__init__()
        self.temporal_padding = temporal_padding
        if shortcut_type not in ('A', 'B'):
            raise ValueError(f"resnet_shortcut must be 'A' or 'B', not {shortcut_type!r}")
        widths = [int(w * widen_factor) for w in block_inplanes]
        self.in_planes = widths[0]
        self._make_stem(n_input_channels, widths[0], conv1_t_size, conv1_t_stride)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = (nn.Identity() if no_max_pool
                        else nn.MaxPool3d(kernel_size=3, stride=2, padding=1))
        kwargs = {**(block_kwargs or {}), 'temporal_padding': temporal_padding}
        self.layer1 = self._make_layer(block, widths[0], layers[0], shortcut_type, 1, kwargs)
        self.layer2 = self._make_layer(block, widths[1], layers[1], shortcut_type, 2, kwargs)
        self.layer3 = self._make_layer(block, widths[2], layers[2], shortcut_type, 2, kwargs)
        self.layer4 = self._make_layer(block, widths[3], layers[3], shortcut_type, 2, kwargs)
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(self.in_planes, n_classes)
        init_weights(self)

    def _make_stem(self, n_input_channels: int, planes: int, t_size: int, t_stride: int) -> None:
        self.conv1 = conv3d(n_input_channels, planes, (t_size, 7, 7), (t_stride, 2, 2), (t_size // 2, 3, 3),
                            temporal_padding=self.temporal_padding)
        self.bn1 = nn.BatchNorm3d(planes)

    def _forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn1(self.conv1(x)))

    def _make_layer(self, block: Type[nn.Module], planes: int, n_blocks: int,
                    shortcut_type: str, stride: int, block_kwargs: Dict[str, Any]) -> nn.Sequential:
        out_planes = planes * block.expansion
        downsample = None
        if stride != 1 or self.in_planes != out_planes:
            downsample = make_shortcut(shortcut_type, self.in_planes, out_planes, stride)
        blocks: List[nn.Module] = [block(self.in_planes, planes, stride, downsample, **block_kwargs)]
        self.in_planes = out_planes
        for _ in range(1, n_blocks):
            blocks.append(block(self.in_planes, planes, **block_kwargs))
        return nn.Sequential(*blocks)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x T x H x W clips to N x F globally pooled features (the input of ``fc``)."""
        x = self.maxpool(self._forward_stem(x))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


def init_weights(model: nn.Module) -> None:
    """The original's initialisation: Kaiming-normal (fan_out) convs, BN weight 1 and bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


# depth -> (block kind, blocks per stage); shared by resnet, resnet2p1d and preresnet.
RESNET_LAYERS = {
    10: ('basic', (1, 1, 1, 1)),
    18: ('basic', (2, 2, 2, 2)),
    34: ('basic', (3, 4, 6, 3)),
    50: ('bottleneck', (3, 4, 6, 3)),
    101: ('bottleneck', (3, 4, 23, 3)),
    152: ('bottleneck', (3, 8, 36, 3)),
    200: ('bottleneck', (3, 24, 36, 3)),
}


def resnet(depth: int, **kwargs: Any) -> ResNet:
    """3D ResNet of the given depth; kwargs go to ``ResNet``."""
    kind, layers = RESNET_LAYERS[depth]
    return ResNet(BasicBlock if kind == 'basic' else Bottleneck, layers, **kwargs)
