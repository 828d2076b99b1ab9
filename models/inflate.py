"""Inflating 2D ImageNet weights into a 3D network (Carreira & Zisserman's I3D inflation).

Every k x k kernel is repeated along time to the 3D kernel's temporal size t and divided by t,
so that a "boring" video - one image repeated - gives the same activations as the 2D network
on that image. BatchNorm parameters and statistics are copied; the classifier is copied when
the class counts agree and freshly initialised otherwise.
"""
from pathlib import Path
from typing import Dict, Tuple

import torch
import torch.nn as nn

from models.checkpoint import CheckpointError, save_checkpoint
from models.factory import generate_model
from models.state_dicts import fit_state_dict, misfit_error, read_state_dict, strip_prefixes

ARCHS = ['googlenet', 'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152']
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def inflate_state_dict(state_2d: Dict[str, torch.Tensor], model_3d: nn.Module,
                       skip_prefixes: Tuple[str, ...] = ('aux1.', 'aux2.')) -> Dict[str, torch.Tensor]:
    """Map a 2D state_dict onto ``model_3d``'s keys, inflating 4D conv kernels to its 5D shapes.

    A head (``fc.``) of another class count keeps its fresh weights. Raises ``CheckpointError``
    listing keys that are missing, unexpected or of incompatible shape.
    """
    def inflated(key: str, value: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
        if value.dim() == 4 and want.dim() == 5:
            t = want.shape[2]
            return value.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
        return value

    source = {k: v for k, v in strip_prefixes(state_2d).items() if not k.startswith(skip_prefixes)}
    fit = fit_state_dict(model_3d.state_dict(), source, convert=inflated)
    fit.missing = [k for k in fit.missing if not k.startswith('fc.')]
    fit.mismatched = [m for m in fit.mismatched if not m[0].startswith('fc.')]
    if not fit.fits:
        raise misfit_error(fit)
    return fit.state_dict


def inflate(src: Path, dst: Path, arch: str, n_classes: int = 1000, conv1_t_size: int = 7,
            conv1_t_stride: int = 2, trust: bool = False) -> Path:
    """Inflate the 2D weights in ``src`` into a checkpoint at ``dst`` (``trust``: full unpickling allowed)."""
    state_2d = read_state_dict(src, trust=trust)
    options = dict(model='i3d', model_depth=22, n_classes=n_classes, conv1_t_size=conv1_t_size,
                   conv1_t_stride=conv1_t_stride)
    if arch.startswith('resnet'):
        options = dict(model='resnet', model_depth=int(arch[len('resnet'):]), n_classes=n_classes,
                       conv1_t_size=conv1_t_size, conv1_t_stride=conv1_t_stride, resnet_shortcut='B',
                       temporal_padding='replicate')
    model = generate_model(**options)
    try:
        model.load_state_dict(inflate_state_dict(state_2d, model))
    except CheckpointError as e:
        raise CheckpointError(f'{src}: {e}') from e
    return save_checkpoint(dst, model, options, mean=IMAGENET_MEAN, std=IMAGENET_STD, value_scale=1,
                           extra={'converted_from': f'inflated torchvision {arch}'})
