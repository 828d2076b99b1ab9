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
from typing import Dict, Mapping, Optional

import torch
import torch.nn as nn

from models.frame_nets import IMAGENET_HEADS, first_conv_name
from models.state_dicts import fit_state_dict, misfit_error, strip_prefixes

STREAMS = ('rgb', 'flow')


def cross_modality(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """An RGB first-conv kernel (out x 3 x k x k) for ``in_channels`` inputs: its mean over the colours, replicated."""
    return weight.mean(1, keepdim=True).repeat(1, in_channels, 1, 1)


def imagenet_state_dict(model: nn.Module, state_2d: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """``model``'s state_dict with both streams taken from a torchvision ImageNet ``state_2d``.

    Raises ``CheckpointError`` listing the keys that are missing, unexpected or of another shape.
    """
    source = {k: v for k, v in strip_prefixes(state_2d).items() if not k.startswith(IMAGENET_HEADS)}
    flow_first = 'flow.' + first_conv_name(model.flow) + '.weight'

    def stream_key(key: str) -> Optional[str]:  # 'rgb.conv1.weight' -> 'conv1.weight'; fused layers, head: None
        stream, _, rest = key.partition('.')
        return rest if stream in STREAMS else None

    def cross(key: str, value: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
        return cross_modality(value, want.shape[1]) if key == flow_first else value

    fit = fit_state_dict(model.state_dict(), source, stream_key, cross)
    if not fit.fits:
        raise misfit_error(fit)
    return fit.state_dict
