"""Wide 3D ResNet: Bottleneck blocks of expansion 2 on a trunk k times wider (stem included)."""
from typing import Any

from models.resnet import BLOCK_INPLANES, RESNET_LAYERS, Bottleneck, ResNet

WIDE_RESNET_DEPTHS = (50, 101, 152, 200)


class WideBottleneck(Bottleneck):
    """Bottleneck whose output is 2x (not 4x) its inner width."""
    expansion = 2


def wide_resnet(depth: int, k: int = 2, widen_factor: float = 1.0, **kwargs: Any) -> ResNet:
    """WideResNet of the given depth with width multiplier ``k`` (times ``widen_factor``)."""
    if depth not in WIDE_RESNET_DEPTHS:
        raise KeyError(depth)
    if k < 1:
        raise ValueError(f"wide_resnet_k must be >= 1, not {k}")
    _, layers = RESNET_LAYERS[depth]
    return ResNet(WideBottleneck, layers, BLOCK_INPLANES, widen_factor=k * widen_factor, **kwargs)
