"""Command-line options, named and defaulted as in the original 3D-ResNets-PyTorch.

For now this holds the model-defining group, shared by ``main.py`` and the tools in
``util_scripts/``; the data, training and inference groups arrive with the training loop.
"""
import argparse
from typing import Any, Dict

from models import MODEL_DEFAULTS, MODEL_DEPTHS, MODEL_OPTION_NAMES


def add_model_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the flags that define a model's architecture (``generate_model``'s keywords)."""
    d = MODEL_DEFAULTS
    g = parser.add_argument_group('model')
    g.add_argument('--model', default=d['model'], choices=list(MODEL_DEPTHS),
                   help='Model family (default: %(default)s)')
    g.add_argument('--model_depth', default=d['model_depth'], type=int,
                   help='Depth: resnet/resnet2p1d/preresnet 10|18|34|50|101|152|200, '
                        'wideresnet/resnext 50|101|152|200, densenet 121|169|201|264 '
                        '(default: %(default)s)')
    g.add_argument('--n_classes', default=d['n_classes'], type=int,
                   help='Number of output classes (default: %(default)s)')
    g.add_argument('--n_input_channels', default=d['n_input_channels'], type=int,
                   help='Input channels: 3 for RGB, 2 for optical flow (default: %(default)s)')
    g.add_argument('--conv1_t_size', default=d['conv1_t_size'], type=int,
                   help='Temporal kernel size of the stem conv (default: %(default)s)')
    g.add_argument('--conv1_t_stride', default=d['conv1_t_stride'], type=int,
                   help='Temporal stride of the stem conv (default: %(default)s)')
    g.add_argument('--no_max_pool', action='store_true',
                   help='Remove the 3x3x3 stride-2 max pool after the stem')
    g.add_argument('--resnet_shortcut', default=d['resnet_shortcut'], choices=['A', 'B'],
                   help='Shortcut: A = zero-padded identity, B = 1x1x1 conv + BN '
                        '(default: %(default)s)')
    g.add_argument('--resnet_widen_factor', default=d['resnet_widen_factor'], type=float,
                   help='Channel width multiplier of the ResNet trunks (default: %(default)s)')
    g.add_argument('--wide_resnet_k', default=d['wide_resnet_k'], type=int,
                   help='Width multiplier of wideresnet (default: %(default)s)')
    g.add_argument('--resnext_cardinality', default=d['resnext_cardinality'], type=int,
                   help='Groups of the ResNeXt 3x3x3 conv (default: %(default)s)')
    g.add_argument('--r2p1d_mid_planes', default=d['r2p1d_mid_planes'], choices=['conv', 'block'],
                   help='resnet2p1d mid-plane widths: conv = per conv, as in the original; '
                        'block = one per block, as in torchvision (default: %(default)s)')
    g.add_argument('--r2p1d_stem_mid_planes', default=d['r2p1d_stem_mid_planes'], type=int,
                   help='resnet2p1d stem mid-plane width; 0 = parameter-matching formula '
                        '(110 for conv1_t_size 7); torchvision uses 45 (default: %(default)s)')
    return parser


def model_options(args: argparse.Namespace) -> Dict[str, Any]:
    """The model-defining options of parsed arguments, ready for ``generate_model(**...)``."""
    return {name: getattr(args, name) for name in MODEL_OPTION_NAMES}
