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
from typing import List, Optional

from common import cli
from models.inflate import ARCHS, inflate
from models.safe_load import TRUST_HELP


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = cli.parser('inflate_2d_weights', __doc__)
    parser.add_argument('src', type=Path, help='2D state_dict (.pth)')
    parser.add_argument('dst', type=Path, help='checkpoint to write')
    parser.add_argument('--arch', required=True, choices=ARCHS)
    parser.add_argument('--n_classes', type=int, default=1000, help='classes of the written model')
    parser.add_argument('--conv1_t_size', type=int, default=7)
    parser.add_argument('--conv1_t_stride', type=int, default=None,
                        help='temporal stride of the stem (default: 2 for googlenet as I3D, 1 for resnets)')
    parser.add_argument('--trust_checkpoint', action='store_true', help=TRUST_HELP)
    args = parser.parse_args(argv)
    if args.conv1_t_stride is None:
        args.conv1_t_stride = 2 if args.arch == 'googlenet' else 1
    return cli.run(lambda: _inflate(args))


def _inflate(args: argparse.Namespace) -> None:
    out = inflate(args.src, args.dst, args.arch, args.n_classes, args.conv1_t_size, args.conv1_t_stride,
                  args.trust_checkpoint)
    flags = ('--model i3d' if args.arch == 'googlenet' else
             f"--model resnet --model_depth {args.arch[len('resnet'):]} --temporal_padding replicate")
    print(f'{out}: inflated from {args.src}; fine-tune it with {flags} --conv1_t_size {args.conv1_t_size} '
          f'--conv1_t_stride {args.conv1_t_stride} --pretrain_path {out} --n_pretrain_classes {args.n_classes}')


if __name__ == '__main__':
    sys.exit(main())
