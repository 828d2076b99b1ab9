"""``generate_model``: every architecture from keyword arguments named like the CLI flags."""
from typing import Any, Callable, Dict, Tuple

import torch.nn as nn

from models.c3d import C3D
from models.conv_lstm import LSTM_DEPTHS, ConvLSTM
from models.densenet import DENSENET_CONFIGS, densenet
from models.i3d import I3D
from models.preresnet import preresnet
from models.resnet import RESNET_LAYERS, resnet
from models.resnet2p1d import resnet2p1d
from models.resnext import RESNEXT_DEPTHS, resnext
from models.two_stream import TWO_STREAM_DEPTHS, two_stream
from models.wide_resnet import WIDE_RESNET_DEPTHS, wide_resnet

# Valid depths per model family, in the order the CLI lists them.
MODEL_DEPTHS: Dict[str, Tuple[int, ...]] = {
    'resnet': tuple(RESNET_LAYERS),
    'resnet2p1d': tuple(RESNET_LAYERS),
    'preresnet': tuple(RESNET_LAYERS),
    'wideresnet': WIDE_RESNET_DEPTHS,
    'resnext': RESNEXT_DEPTHS,
    'densenet': tuple(DENSENET_CONFIGS),
    'i3d': (22,),  # Inception-v1 is 22 layers deep; any --model_depth is accepted for it
    'c3d': (8,),  # 8 convolutions; any --model_depth is accepted for it (as for every one-depth family)
    'lstm': LSTM_DEPTHS,  # the per-frame 2D network: 22 GoogLeNet (the paper's), 18/34/50 ResNet
    # 2D streams of Inception-v1 (22, the paper's) or ResNet-18/34/50, on --input_type rgb_flow clips
    'two_stream': TWO_STREAM_DEPTHS,
    'fused_two_stream': TWO_STREAM_DEPTHS,
}

# The options that define a model's architecture, with their defaults (= the CLI defaults).
# Checkpoints record exactly these so that ``load_model`` can rebuild the network.
MODEL_DEFAULTS: Dict[str, Any] = {
    'model': 'resnet',
    'model_depth': 18,
    'n_classes': 400,
    'n_input_channels': 3,
    'conv1_t_size': 7,
    'conv1_t_stride': 1,
    'no_max_pool': False,
    'resnet_shortcut': 'B',
    'resnet_widen_factor': 1.0,
    'wide_resnet_k': 2,
    'resnext_cardinality': 32,
    'r2p1d_mid_planes': 'conv',
    'r2p1d_stem_mid_planes': 0,
    'temporal_padding': 'zeros',
    'lstm_eval': 'last',
    'flow_frames': 10,
}
TWO_STREAM_MODELS = ('two_stream', 'fused_two_stream')  # RGB + flow clips (--input_type rgb_flow)
FRAME_NET_MODELS = ('lstm',) + TWO_STREAM_MODELS  # torchvision 2D networks run per frame: ImageNet weights, no 3D layout
MODEL_OPTION_NAMES = tuple(MODEL_DEFAULTS)


def arch_name(model: str, model_depth: int) -> str:
    """The original's ``arch`` string, e.g. ``resnet-50`` (I3D: ``i3d-22``, whatever ``model_depth``)."""
    depths = MODEL_DEPTHS.get(model, ())
    return f"{model}-{depths[0] if len(depths) == 1 else model_depth}"


def generate_model(model: str = 'resnet', model_depth: int = 18, n_classes: int = 400,
                   n_input_channels: int = 3, conv1_t_size: int = 7, conv1_t_stride: int = 1,
                   no_max_pool: bool = False, resnet_shortcut: str = 'B',
                   resnet_widen_factor: float = 1.0, wide_resnet_k: int = 2,
                   resnext_cardinality: int = 32, r2p1d_mid_planes: str = 'conv',
                   r2p1d_stem_mid_planes: int = 0, temporal_padding: str = 'zeros',
                   lstm_eval: str = 'last', flow_frames: int = 10) -> nn.Module:
    """Build a model mapping N x C x T x H x W clips to N x ``n_classes`` logits.

    ``r2p1d_mid_planes`` ('conv': per-conv parameter-matching widths as in the original;
    'block': one width per block as in torchvision) and ``r2p1d_stem_mid_planes`` (0: the
    formula, 110 for the default stem; torchvision uses 45) only affect ``resnet2p1d``.
    ``temporal_padding`` 'replicate' pads time with border frames in the ResNet families
    (inflated 2D weights then reproduce the 2D network on a still video); I3D always does.
    ``lstm_eval`` (``lstm`` only): the eval-mode output is the last step's ('last') or the
    mean over the steps ('mean'); in training mode ``lstm`` returns N x ``n_classes`` x T.
    ``flow_frames`` (the flow frames stacked per snapshot) only affects the two-stream models.
    """
    if model not in MODEL_DEPTHS:
        raise ValueError(f"unknown model {model!r}: choose one of {', '.join(MODEL_DEPTHS)}")
    if len(MODEL_DEPTHS[model]) == 1:  # i3d, c3d
        model_depth = MODEL_DEPTHS[model][0]
    if model_depth not in MODEL_DEPTHS[model]:
        depths = ', '.join(str(d) for d in MODEL_DEPTHS[model])
        raise ValueError(f'{model} has no depth {model_depth!r}: choose one of {depths}')
    for name, value in (('n_classes', n_classes), ('n_input_channels', n_input_channels),
                        ('conv1_t_size', conv1_t_size), ('conv1_t_stride', conv1_t_stride)):
        if int(value) != value or value < 1:
            raise ValueError(f'{name} must be a positive integer, not {value!r}')
    if resnet_widen_factor <= 0:
        raise ValueError(f'resnet_widen_factor must be positive, not {resnet_widen_factor!r}')

    stem = dict(n_input_channels=n_input_channels, conv1_t_size=conv1_t_size,
                conv1_t_stride=conv1_t_stride, no_max_pool=no_max_pool, n_classes=n_classes)
    if model == 'densenet':
        if temporal_padding != 'zeros':
            raise ValueError('temporal_padding replicate is not available for densenet')
        return densenet(model_depth, **stem)
    if model == 'c3d':
        return C3D(n_classes=n_classes, n_input_channels=n_input_channels)
    if model == 'lstm':  # ConvLSTM checks lstm_eval
        return ConvLSTM(n_classes=n_classes, n_input_channels=n_input_channels, depth=model_depth,
                        eval_output=lstm_eval)
    if model == 'i3d':  # the paper's stem has --conv1_t_stride 2
        return I3D(n_classes=n_classes, n_input_channels=n_input_channels, conv1_t_size=conv1_t_size,
                   conv1_t_stride=conv1_t_stride)
    if model in TWO_STREAM_MODELS:
        return two_stream(model, model_depth, n_classes, n_input_channels, flow_frames)
    trunk = dict(stem, shortcut_type=resnet_shortcut, widen_factor=resnet_widen_factor,
                 temporal_padding=temporal_padding)
    builders: Dict[str, Callable[[], nn.Module]] = {
        'resnet': lambda: resnet(model_depth, **trunk),
        'resnet2p1d': lambda: resnet2p1d(model_depth, mid_planes_rule=r2p1d_mid_planes,
                                         stem_mid_planes=r2p1d_stem_mid_planes, **trunk),
        'preresnet': lambda: preresnet(model_depth, **trunk),
        'wideresnet': lambda: wide_resnet(model_depth, k=wide_resnet_k, **trunk),
        'resnext': lambda: resnext(model_depth, cardinality=resnext_cardinality, **trunk),
    }
    return builders[model]()


def head_name(model: nn.Module) -> str:
    """Name of the classification layer: the model's ``HEAD`` (C3D: ``fc8``), else ``fc`` or ``classifier`` (DenseNet)."""
    named = getattr(model, 'HEAD', None)
    if isinstance(named, str):
        return named
    return 'classifier' if hasattr(model, 'classifier') else 'fc'


def head_of(model: nn.Module) -> nn.Linear:
    """The classification layer itself."""
    return getattr(model, head_name(model))


def replace_head(model: nn.Module, n_classes: int) -> nn.Module:
    """Swap the classifier for a fresh Linear (PyTorch's default init) with ``n_classes`` outputs."""
    name = head_name(model)
    old = head_of(model)
    new = nn.Linear(old.in_features, n_classes)
    setattr(model, name, new.to(device=old.weight.device, dtype=old.weight.dtype))
    return model
