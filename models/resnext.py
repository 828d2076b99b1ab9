"""3D ResNeXt: Bottleneck blocks of expansion 2 with a grouped 3x3x3 conv.

The inner width is ``cardinality * planes // 32`` on stage widths 128/256/512/1024, so the
stem is 128 wide, as in the original's master branch. Unlike the original, the classifier
always matches the last stage (the original broke for cardinality != 32).
"""
from typing import Any, Optional

import torch.nn as nn

from models.resnet import RESNET_LAYERS, Bottleneck, ResNet

RESNEXT_INPLANES = (128, 256, 512, 1024)
RESNEXT_DEPTHS = (50, 101, 152, 200)


class ResNeXtBottleneck(Bottleneck):
    """Bottleneck with ``cardinality`` groups in its 3x3x3 conv."""
    expansion = 2

    def __init__(self, in_planes: int, planes: int, stride: int = 1,
                 downsample: Optional[nn.Module] = None, cardinality: int = 32,
                 temporal_padding: str = 'zeros'):
        super().__init__(in_planes, planes, stride, downsample, width=cardinality * planes // 32,
                         groups=cardinality, temporal_padding=temporal_padding)


def resnext(depth: int, cardinality: int = 32, **kwargs: Any) -> ResNet:
    """ResNeXt of the given depth and cardinality; kwargs go to ``ResNet``."""
    if depth not in RESNEXT_DEPTHS:
        raise KeyError(depth)
    if cardinality < 1:
        raise ValueError(f"resnext_cardinality must be >= 1, not {cardinality}")
    _, layers = RESNET_LAYERS[depth]
    return ResNet(ResNeXtBottleneck, layers, RESNEXT_INPLANES,
                  block_kwargs={'cardinality': cardinality}, **kwargs)
