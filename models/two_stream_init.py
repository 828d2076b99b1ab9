"""ImageNet weights for both streams of the two-stream models (the cross-modality initialisation).

The RGB stream takes a torchvision ImageNet state_dict (GoogLeNet for ``model_depth`` 22,
ResNet-18/34/50) as it is. The flow stream takes it too, except its first convolution, which
sees 2L flow channels instead of 3 colours: its kernel is the RGB kernel averaged over the 3
colour channels and replicated over the 2L channels (Wang et al., "Temporal Segment
Networks", 2016: the standard cross-modality initialisation). BatchNorm parameters and
statistics are copied; the auxiliary classifiers and the ImageNet classifier are left out
(the fused layers and the head stay as initialised). ``main.py --backbone_weights`` uses it
through ``TwoStream.load_imagenet``.
"""
from typing import Dict, List, Mapping

import torch
import torch.nn as nn

from models.checkpoint import strip_prefixes
from models.frame_nets import first_conv_name
from models.inflate import misfit_error
from models.torchvision_weights import IMAGENET_HEADS

STREAMS = ('rgb', 'flow')


def cross_modality(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """An RGB first-conv kernel (out x 3 x k x k) for ``in_channels`` inputs: its mean over the colours, replicated."""
    return weight.mean(1, keepdim=True).repeat(1, in_channels, 1, 1)


def imagenet_state_dict(model: nn.Module, state_2d: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``model``'s state_dict with both streams taken from a torchvision ImageNet ``state_2d``.

    Raises ``CheckpointError`` listing the keys that are missing, unexpected or of another shape.
    """
    target = model.state_dict()
    source = {k: v for k, v in strip_prefixes(state_2d).items() if not k.startswith(IMAGENET_HEADS)}
    first = first_conv_name(model.flow) + '.weight'
    out = dict(target)
    missing: List[str] = []
    mismatched: List[str] = []
    for stream in STREAMS:
        prefix = f'{stream}.'
        for key in (k[len(prefix):] for k in target if k.startswith(prefix)):
            if key not in source:
                missing.append(key)
                continue
            want = target[prefix + key]
            value = source[key]
            if stream == 'flow' and key == first:
                value = cross_modality(value, want.shape[1])
            if tuple(value.shape) != tuple(want.shape):
                mismatched.append(f'{key}: {list(value.shape)} vs {list(want.shape)}')
                continue
            out[prefix + key] = value.to(want.dtype)
    unexpected = [k for k in source if f'rgb.{k}' not in target]
    if missing or unexpected or mismatched:
        raise misfit_error(unexpected, mismatched, sorted(set(missing)))
    return out
