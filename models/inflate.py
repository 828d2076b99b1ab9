"""Inflating 2D ImageNet weights into a 3D network (Carreira & Zisserman's I3D inflation).

Every k x k kernel is repeated along time to the 3D kernel's temporal size t and divided by t,
so that a "boring" video - one image repeated - gives the same activations as the 2D network
on that image. BatchNorm parameters and statistics are copied; the classifier is copied when
the class counts agree and freshly initialised otherwise.
"""
from pathlib import Path
from typing import Dict, Sequence, Tuple

import torch
import torch.nn as nn

from models.checkpoint import CheckpointError, read_state_dict, save_checkpoint, strip_prefixes
from models.factory import generate_model

ARCHS = ['googlenet', 'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152']
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def misfit_error(unexpected: Sequence[str], mismatched: Sequence[str], missing: Sequence[str]) -> CheckpointError:
    """'the 2D weights do not fit: unexpected: ...; shape mismatch: ...; missing: ...' (the first 4 of each)."""
    parts = [f'{name}: {", ".join(keys[:4])}' + (' ...' if len(keys) > 4 else '')
             for name, keys in (('unexpected', unexpected), ('shape mismatch', mismatched),
                                ('missing', missing)) if keys]
    return CheckpointError('the 2D weights do not fit: ' + '; '.join(parts))


def inflate_state_dict(state_2d: Dict[str, torch.Tensor], model_3d: nn.Module,
                       skip_prefixes: Tuple[str, ...] = ('aux1.', 'aux2.')) -> Dict[str, torch.Tensor]:
    """Map a 2D state_dict onto ``model_3d``'s keys, inflating 4D conv kernels to its 5D shapes.

    Raises ``CheckpointError`` listing keys that are missing, unexpected or of incompatible shape.
    """
    target = model_3d.state_dict()
    out: Dict[str, torch.Tensor] = {}
    unexpected, mismatched = [], []
    for key, value in strip_prefixes(state_2d).items():
        if key.startswith(skip_prefixes):
            continue
        if key not in target:
            unexpected.append(key)
            continue
        want = target[key].shape
        if value.dim() == 4 and len(want) == 5:
            t = want[2]
            value = value.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
        if tuple(value.shape) != tuple(want):
            if key.startswith('fc.'):
                continue  # another class count: keep the fresh head
            mismatched.append(f'{key}: {list(value.shape)} vs {list(want)}')
            continue
        out[key] = value.to(target[key].dtype)
    missing = [k for k in target if k not in out and not k.startswith('fc.')]
    if unexpected or mismatched or missing:
        raise misfit_error(unexpected, mismatched, missing)
    return {**target, **out}


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
