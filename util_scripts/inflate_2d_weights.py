"""Inflate 2D ImageNet weights into a 3D network (Carreira & Zisserman's I3D inflation).

    python -m util_scripts.inflate_2d_weights SRC DST --arch googlenet|resnet18|resnet34|resnet50|resnet101|resnet152
                                              [--n_classes 1000] [--conv1_t_size 7] [--conv1_t_stride 2|1]

SRC is a torchvision GoogLeNet (Inception-v1) or ResNet state_dict; DST is a checkpoint of
our I3D, or of our 3D ResNet of the same depth (shortcut B, max pool kept,
``temporal_padding replicate``). Every k x k kernel is repeated along time to the 3D
kernel's temporal size t and divided by t, so that a "boring" video — one image repeated —
gives the same activations as the 2D network on that image; padding time with the border
frames makes this hold exactly, border frames included, whatever ``--conv1_t_size`` and
temporal strides. BatchNorm parameters and statistics are copied; the classifier is copied
when the class counts agree and freshly initialised otherwise. GoogLeNet's auxiliary
classifiers are dropped.
"""
import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from models import generate_model, save_checkpoint
from models.checkpoint import CheckpointError, load_checkpoint_object, state_dict_key, strip_prefixes

ARCHS = ['googlenet', 'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152']
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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
        parts = [f'{name}: {", ".join(keys[:4])}' + (' ...' if len(keys) > 4 else '')
                 for name, keys in (('unexpected', unexpected), ('shape mismatch', mismatched),
                                    ('missing', missing)) if keys]
        raise CheckpointError('the 2D weights do not fit: ' + '; '.join(parts))
    return {**target, **out}


def inflate(src: Path, dst: Path, arch: str, n_classes: int = 1000, conv1_t_size: int = 7,
            conv1_t_stride: int = 2) -> Path:
    """Inflate the 2D weights in ``src`` into a checkpoint at ``dst``."""
    obj = load_checkpoint_object(src)
    key = state_dict_key(obj)
    if key is None:
        raise CheckpointError(f'{src}: no state_dict found')
    options = dict(model='i3d', model_depth=22, n_classes=n_classes, conv1_t_size=conv1_t_size,
                   conv1_t_stride=conv1_t_stride)
    if arch.startswith('resnet'):
        options = dict(model='resnet', model_depth=int(arch[len('resnet'):]), n_classes=n_classes,
                       conv1_t_size=conv1_t_size, conv1_t_stride=conv1_t_stride, resnet_shortcut='B',
                       temporal_padding='replicate')
    model = generate_model(**options)
    try:
        model.load_state_dict(inflate_state_dict(obj[key] if key else obj, model))
    except CheckpointError as e:
        raise CheckpointError(f'{src}: {e}') from e
    return save_checkpoint(dst, model, options, mean=IMAGENET_MEAN, std=IMAGENET_STD, value_scale=1,
                           extra={'converted_from': f'inflated torchvision {arch}'})


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', type=Path, help='2D state_dict (.pth)')
    parser.add_argument('dst', type=Path, help='checkpoint to write')
    parser.add_argument('--arch', required=True, choices=ARCHS)
    parser.add_argument('--n_classes', type=int, default=1000, help='classes of the written model')
    parser.add_argument('--conv1_t_size', type=int, default=7)
    parser.add_argument('--conv1_t_stride', type=int, default=None,
                        help='temporal stride of the stem (default: 2 for googlenet as I3D, 1 for resnets)')
    args = parser.parse_args(argv)
    if args.conv1_t_stride is None:
        args.conv1_t_stride = 2 if args.arch == 'googlenet' else 1
    try:
        out = inflate(args.src, args.dst, args.arch, args.n_classes, args.conv1_t_size, args.conv1_t_stride)
    except CheckpointError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    flags = ('--model i3d' if args.arch == 'googlenet' else
             f"--model resnet --model_depth {args.arch[len('resnet'):]} --temporal_padding replicate")
    print(f'{out}: inflated from {args.src}; fine-tune it with {flags} --conv1_t_size {args.conv1_t_size} '
          f'--conv1_t_stride {args.conv1_t_stride} --pretrain_path {out} --n_pretrain_classes {args.n_classes}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
