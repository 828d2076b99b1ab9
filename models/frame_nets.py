"""torchvision's 2D ImageNet networks as the per-frame backbones of the lstm and two-stream models.

``model_depth`` 22 is GoogLeNet (Inception-v1 with BatchNorm after every conv, as the I3D paper's
comparison models use it; no auxiliary heads); 18, 34 and 50 are ResNets. Randomly initialised;
``--backbone_weights`` loads torchvision's ImageNet weights into them by torchvision's own keys.
"""
from typing import Callable, Dict

import torch.nn as nn
import torchvision

FRAME_NET_DEPTHS = (22, 18, 34, 50)
IMAGENET_HEADS = ('fc.', 'aux1.', 'aux2.')  # classifier and GoogLeNet's auxiliary classifiers: not backbone weights

# model_depth -> the randomly initialised torchvision network (its fc's input: the feature channels)
BACKBONES: Dict[int, Callable[[], nn.Module]] = {
    22: lambda: torchvision.models.googlenet(weights=None, aux_logits=False, transform_input=False, init_weights=True),
    18: lambda: torchvision.models.resnet18(weights=None),
    34: lambda: torchvision.models.resnet34(weights=None),
    50: lambda: torchvision.models.resnet50(weights=None),
}


def first_conv_name(net: nn.Module) -> str:
    """The stem convolution's name: ``conv1.conv`` in GoogLeNet (a BasicConv2d), ``conv1`` in a ResNet."""
    return 'conv1.conv' if hasattr(net.conv1, 'conv') else 'conv1'


def replace_first_conv(net: nn.Module, in_channels: int) -> nn.Conv2d:
    """Give ``net`` a new stem convolution of the same shape for ``in_channels`` inputs (e.g. flow); returns it."""
    name = first_conv_name(net)
    old = net.get_submodule(name)
    new = nn.Conv2d(in_channels, old.out_channels, old.kernel_size, old.stride, old.padding, bias=False)
    parent, _, leaf = name.rpartition('.')
    setattr(net.get_submodule(parent) if parent else net, leaf, new)
    return new
