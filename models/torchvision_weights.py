"""torchvision video ResNet weights (r3d_18, r2plus1d_18) as checkpoints of this framework, and
torchvision ImageNet weights for the 2D network of ``--model lstm`` (``--backbone_weights``)."""
import re
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from models.checkpoint import CheckpointError, load_state_dict_checked, save_checkpoint
from models.factory import generate_model
from models.frame_nets import IMAGENET_HEADS
from models.state_dicts import read_state_dict, strip_prefixes

TORCHVISION_MEAN = (0.43216, 0.394666, 0.37645)
TORCHVISION_STD = (0.22803, 0.22145, 0.216989)

# Both are resnet-18 trunks without max pool, with a 3-frame stem and projection shortcuts.
ARCH_OPTIONS: Dict[str, Dict[str, Any]] = {
    'r3d_18': dict(model='resnet', model_depth=18, conv1_t_size=3, no_max_pool=True,
                   resnet_shortcut='B'),
    'r2plus1d_18': dict(model='resnet2p1d', model_depth=18, conv1_t_size=3, no_max_pool=True,
                        resnet_shortcut='B', r2p1d_mid_planes='block', r2p1d_stem_mid_planes=45),
}

# (torchvision key pattern, our key template); the first match wins.
_COMMON = [
    (r'layer(\d)\.(\d+)\.downsample\.(.+)', r'layer\1.\2.downsample.\3'),
    (r'fc\.(.+)', r'fc.\1'),
]
KEY_RULES: Dict[str, List[Tuple[str, str]]] = {
    'r3d_18': [
        (r'stem\.0\.weight', 'conv1.weight'),
        (r'stem\.1\.(.+)', r'bn1.\1'),
        (r'layer(\d)\.(\d+)\.conv(\d)\.0\.weight', r'layer\1.\2.conv\3.weight'),
        (r'layer(\d)\.(\d+)\.conv(\d)\.1\.(.+)', r'layer\1.\2.bn\3.\4'),
    ] + _COMMON,
    'r2plus1d_18': [
        (r'stem\.0\.weight', 'conv1_s.weight'),
        (r'stem\.1\.(.+)', r'bn1_s.\1'),
        (r'stem\.3\.weight', 'conv1_t.weight'),
        (r'stem\.4\.(.+)', r'bn1_t.\1'),
        (r'layer(\d)\.(\d+)\.conv(\d)\.0\.0\.weight', r'layer\1.\2.conv\3_s.weight'),
        (r'layer(\d)\.(\d+)\.conv(\d)\.0\.1\.(.+)', r'layer\1.\2.bn\3_s.\4'),
        (r'layer(\d)\.(\d+)\.conv(\d)\.0\.3\.weight', r'layer\1.\2.conv\3_t.weight'),
        (r'layer(\d)\.(\d+)\.conv(\d)\.1\.(.+)', r'layer\1.\2.bn\3_t.\4'),
    ] + _COMMON,
}


def convert_state_dict(state_dict: Mapping[str, torch.Tensor], arch: str
                       ) -> Tuple['Dict[str, torch.Tensor]', Dict[str, Any]]:
    """Rename a torchvision state_dict to our keys; return it with the model options."""
    rules = [(re.compile(p), t) for p, t in KEY_RULES[arch]]
    out: Dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in strip_prefixes(state_dict).items():
        for pattern, template in rules:
            if pattern.fullmatch(key):
                out[pattern.sub(template, key)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"keys that a torchvision {arch} does not have: {', '.join(unknown[:5])}"
                              f"{' ...' if len(unknown) > 5 else ''} (is --arch right?)")
    if 'fc.weight' not in out:
        raise CheckpointError(f'no fc.weight: not a torchvision {arch} state_dict')
    options = dict(ARCH_OPTIONS[arch], n_classes=int(out['fc.weight'].shape[0]))
    return out, options


def kinetics400_class_names(arch: str) -> Optional[List[str]]:
    """The Kinetics-400 class names in torchvision's weight metadata (no download needed)."""
    try:
        from torchvision.models import video
        weights = {'r3d_18': video.R3D_18_Weights, 'r2plus1d_18': video.R2Plus1D_18_Weights}[arch]
        return list(weights.KINETICS400_V1.meta['categories'])
    except (ImportError, AttributeError, KeyError):
        return None


def convert(src: Path, dst: Path, arch: str, trust: bool = False) -> Path:
    """Convert ``src`` into a checkpoint at ``dst``, verifying that every weight fits.

    ``trust`` allows full unpickling of ``src``.
    """
    state_dict = read_state_dict(src, trust=trust)
    try:
        ours, options = convert_state_dict(state_dict, arch)
    except CheckpointError as e:
        raise CheckpointError(f'{src}: {e}') from e
    model = generate_model(**options)
    load_state_dict_checked(model, ours, source=str(src), options=options)
    names = kinetics400_class_names(arch) if options['n_classes'] == 400 else None
    return save_checkpoint(dst, model, options, class_names=names, mean=TORCHVISION_MEAN,
                           std=TORCHVISION_STD, value_scale=1, sample_size=112,
                           sample_duration=16, extra={'converted_from': f'torchvision {arch}'})




def load_imagenet_backbone(model: torch.nn.Module, path: Path, trust: bool = False) -> None:
    """Load a torchvision ImageNet classification state_dict file into ``model.imagenet_backbone()``,
    or through ``model.load_imagenet(weights, source)`` (the two-stream models: both streams).

    The file is read without running code from it (unless ``trust``); its classifier and
    auxiliary heads are left out and every other weight must fit (``CheckpointError`` otherwise).
    """
    backbone = getattr(model, 'imagenet_backbone', None)
    streams = getattr(model, 'load_imagenet', None)
    if not callable(backbone) and not callable(streams):
        raise CheckpointError(f'{path}: {type(model).__name__} has no 2D ImageNet network to load it into')
    weights = {k: v for k, v in read_state_dict(path, trust=trust).items() if not k.startswith(IMAGENET_HEADS)}
    if callable(streams):
        streams(weights, source=str(path))
        return
    load_state_dict_checked(backbone(), weights, source=f'{path} (ImageNet weights of the 2D network)')
