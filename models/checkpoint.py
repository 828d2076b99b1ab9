"""Checkpoints: one place that saves, reads, checks and loads model weights.

Saved files keep the original 3D-ResNets-PyTorch keys (``epoch``, ``arch``, ``state_dict``,
``optimizer``, ``scheduler``) and add what is needed to rebuild and use the model without
remembering its flags: ``model_options``, ``class_names``, ``mean``/``std``/``value_scale``,
``sample_size``/``sample_duration`` and ``version``. Reading accepts those, the original's
files, bare state_dicts and keys prefixed by ``module.`` (DataParallel/DDP) or
``_orig_mod.`` (torch.compile). Weights are never loaded in part: a state_dict that does not
fit raises ``CheckpointError`` naming the flags that would make it fit. Files are read without
running code from them unless the caller passes ``trust=True`` (``models/safe_load.py``).
"""
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Union

import torch
import torch.nn as nn

from common.atomic import atomic_write
from models.densenet import DENSENET_CONFIGS
from models.factory import MODEL_DEFAULTS, MODEL_OPTION_NAMES, arch_name, generate_model, head_name, replace_head
from models.resnet import RESNET_LAYERS
from models.resnet2p1d import mid_planes
from models.safe_load import CheckpointError
from models.state_dicts import fit_state_dict, key_list, load_checkpoint_object, state_dict_key_of, strip_prefixes

FRAMEWORK_VERSION = '0.1.0'
PathLike = Union[str, os.PathLike]


# ----------------------------------------------------------------------------- writing

def unwrap_model(model: nn.Module) -> nn.Module:
    """The bare model inside DataParallel/DDP (``.module``) and torch.compile (``._orig_mod``)."""
    while True:
        if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, '_orig_mod') and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def save_checkpoint(path: PathLike, model: nn.Module, model_options: Mapping[str, Any], *,
                    epoch: int = 0, optimizer: Optional[Any] = None,
                    scheduler: Optional[Any] = None, class_names: Optional[Sequence[str]] = None,
                    mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None,
                    value_scale: float = 1, sample_size: Optional[int] = None,
                    sample_duration: Optional[int] = None,
                    preprocessing: Optional[Mapping[str, Any]] = None,
                    extra: Optional[Mapping[str, Any]] = None) -> Path:
    """Atomically write a checkpoint readable by both this framework and the original.

    ``preprocessing`` (``preprocessing.Preprocessing.to_dict()``) is the input
    contract; when given, it also fills the older top-level ``mean``/``std``/... keys.
    """
    if preprocessing is not None:
        mean, std, value_scale = preprocessing['mean'], preprocessing['std'], preprocessing['value_scale']
        sample_size, sample_duration = preprocessing['sample_size'], preprocessing['sample_duration']
    options = {**MODEL_DEFAULTS, **{k: v for k, v in model_options.items() if k in MODEL_DEFAULTS}}
    state = {
        'epoch': int(epoch),
        'arch': arch_name(options['model'], options['model_depth']),
        'state_dict': strip_prefixes(unwrap_model(model).state_dict()),
        'optimizer': optimizer.state_dict() if hasattr(optimizer, 'state_dict') else optimizer,
        'scheduler': scheduler.state_dict() if hasattr(scheduler, 'state_dict') else scheduler,
        'model_options': options,
        'class_names': list(class_names) if class_names is not None else None,
        'mean': [float(m) for m in mean] if mean is not None else None,
        'std': [float(s) for s in std] if std is not None else None,
        'value_scale': value_scale,
        'sample_size': sample_size,
        'sample_duration': sample_duration,
        'preprocessing': dict(preprocessing) if preprocessing is not None else None,
        'version': FRAMEWORK_VERSION,
    }
    if extra:
        state.update(extra)
    return atomic_write(path, lambda f: torch.save(state, f))


# ----------------------------------------------------------------------------- reading

def load_checkpoint(path: PathLike, trust: bool = False) -> Dict[str, Any]:
    """Read any supported checkpoint into a dict whose ``state_dict`` has no wrapper prefixes.

    Bare state_dicts come back as ``{'state_dict': ...}``; metadata keys absent from a file
    are absent from the dict. ``trust``: see ``load_checkpoint_object``.
    """
    obj = load_checkpoint_object(path, trust=trust)
    key = state_dict_key_of(obj, path)
    ckpt: Dict[str, Any] = {'state_dict': obj} if key == '' else dict(obj)
    if key == 'model':  # training scripts of other frameworks (torchvision's references)
        ckpt['state_dict'] = ckpt.pop('model')
    ckpt['state_dict'] = strip_prefixes(ckpt['state_dict'])
    if 'stem.0.weight' in ckpt['state_dict']:
        raise CheckpointError(
            f'{path}: this is a torchvision video model state_dict; convert it first with '
            f'python -m util_scripts.convert_torchvision_weights {path} OUT.pth --arch r3d_18|r2plus1d_18')
    return ckpt


# ----------------------------------------------------------------------------- diagnosis

def _shape(sd: Mapping[str, torch.Tensor], key: str) -> Optional[tuple]:
    return tuple(sd[key].shape) if key in sd else None


def _stage_blocks(sd: Mapping[str, torch.Tensor]) -> tuple:
    counts = []
    for stage in range(1, 5):
        pattern = re.compile(rf'^layer{stage}\.(\d+)\.')
        counts.append(len({m.group(1) for k in sd for m in [pattern.match(k)] if m}))
    return tuple(counts)


def infer_options(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """Model options that a state_dict's key names and shapes reveal (a best guess, for hints)."""
    sd = state_dict
    try:
        if 'features.conv1.weight' in sd and 'classifier.weight' in sd:
            blocks = []
            for b in range(1, 5):
                pattern = re.compile(rf'^features\.denseblock{b}\.denselayer(\d+)\.')
                blocks.append(len({m.group(1) for k in sd for m in [pattern.match(k)] if m}))
            conv1 = _shape(sd, 'features.conv1.weight')
            opts: Dict[str, Any] = {'model': 'densenet', 'n_classes': _shape(sd, 'classifier.weight')[0],
                                    'n_input_channels': conv1[1], 'conv1_t_size': conv1[2]}
            depth = {cfg: d for d, cfg in DENSENET_CONFIGS.items()}.get(tuple(blocks))
            if depth:
                opts['model_depth'] = depth
            return opts
        if 'fc.weight' not in sd:
            return {}
        opts = {'n_classes': _shape(sd, 'fc.weight')[0]}
        bottleneck = 'layer1.0.conv3.weight' in sd
        base_width = 64
        if 'conv1_s.weight' in sd:
            opts['model'] = 'resnet2p1d'
            conv_s, conv_t = _shape(sd, 'conv1_s.weight'), _shape(sd, 'conv1_t.weight')
            width = conv_t[0]
            opts.update(n_input_channels=conv_s[1], conv1_t_size=conv_t[2])
            if conv_s[0] != mid_planes(conv_s[1], width, conv_t[2], 7):
                opts['r2p1d_stem_mid_planes'] = conv_s[0]
            if bottleneck:
                c1, mid = _shape(sd, 'layer2.0.conv1.weight'), _shape(sd, 'layer2.0.conv2_s.weight')[0]
                block_in, planes = c1[1], c1[0]
            else:
                c1t, mid = _shape(sd, 'layer2.0.conv1_t.weight'), _shape(sd, 'layer2.0.conv2_s.weight')[0]
                block_in, planes = _shape(sd, 'layer2.0.conv1_s.weight')[1], c1t[0]
            if mid == mid_planes(block_in, planes) != mid_planes(planes, planes):
                opts['r2p1d_mid_planes'] = 'block'
        else:
            conv1 = _shape(sd, 'conv1.weight')
            width = conv1[0]
            opts.update(n_input_channels=conv1[1], conv1_t_size=conv1[2])
            conv2 = _shape(sd, 'layer1.0.conv2.weight')
            if conv2[0] != conv2[1] and bottleneck:
                opts['model'] = 'resnext'
                opts['resnext_cardinality'] = conv2[0] // conv2[1]
                base_width = 128
            elif _shape(sd, 'layer2.0.bn1.weight')[0] != _shape(sd, 'layer2.0.conv1.weight')[0]:
                opts['model'] = 'preresnet'
            elif bottleneck and _shape(sd, 'layer1.0.conv3.weight')[0] == 2 * _shape(sd, 'layer1.0.conv1.weight')[0]:
                opts['model'] = 'wideresnet'
                opts['wide_resnet_k'] = width // 64
                base_width = width
        if width != base_width:
            opts['resnet_widen_factor'] = width / base_width
        kind = 'bottleneck' if bottleneck else 'basic'
        for depth, spec in RESNET_LAYERS.items():
            if spec == (kind, _stage_blocks(sd)):
                opts['model_depth'] = depth
        opts['resnet_shortcut'] = 'B' if any(k.endswith('downsample.0.weight') for k in sd) else 'A'
        opts.setdefault('model', 'resnet')
        return opts
    except (TypeError, IndexError, KeyError, ZeroDivisionError):
        return {}


def _flag(name: str, value: Any) -> str:
    return f'--{name} {value}'


def load_state_dict_checked(model: nn.Module, state_dict: Mapping[str, torch.Tensor], *,
                            source: str = 'state_dict',
                            options: Optional[Mapping[str, Any]] = None,
                            class_flag: str = 'n_classes') -> None:
    """Load strictly, or raise one readable ``CheckpointError`` listing every mismatch.

    ``options`` (the flags the model was built with) let the message name the flags whose
    values the checkpoint's shapes reveal; ``class_flag`` is the flag named for a class-count
    mismatch (``n_pretrain_classes`` when fine-tuning).
    """
    target = unwrap_model(model)
    expected = target.state_dict()
    given = dict(strip_prefixes(state_dict))
    for key in expected:  # PyTorch < 0.4.1 files have no BN batch counters: start them at 0
        if key.endswith('num_batches_tracked') and key not in given:
            given[key] = torch.zeros((), dtype=torch.long)
    fit = fit_state_dict(expected, given)
    if not fit.fits:
        parts = []
        if fit.missing:
            parts.append(f'{len(fit.missing)} missing keys ({key_list(fit.missing)})')
        if fit.unexpected:
            parts.append(f'{len(fit.unexpected)} unexpected keys ({key_list(fit.unexpected)})')
        if fit.mismatched:
            details = [f'{k}: checkpoint {list(got)} vs model {list(want)}' for k, got, want in fit.mismatched]
            parts.append(f'{len(fit.mismatched)} shape mismatches ({key_list(details, 3)})')
        built = {**MODEL_DEFAULTS, **(options or {})}
        name = arch_name(built['model'], built['model_depth']) if options else type(target).__name__
        message = f"{source}: weights do not fit {name}: {'; '.join(parts)}"
        hints = [_flag(class_flag if k == 'n_classes' else k, v)
                 for k, v in infer_options(given).items() if built.get(k) != v]
        if hints and options is not None:
            message += f". The checkpoint's shapes say: {' '.join(hints)}"
        raise CheckpointError(message)
    target.load_state_dict(given, strict=True)


# ----------------------------------------------------------------------------- loading models

def _options_from_checkpoint(ckpt: Mapping[str, Any]) -> Dict[str, Any]:
    if isinstance(ckpt.get('model_options'), Mapping):
        return {k: v for k, v in ckpt['model_options'].items() if k in MODEL_OPTION_NAMES}
    arch = ckpt.get('arch')
    if isinstance(arch, str) and re.fullmatch(r'[a-z0-9]+-\d+', arch):
        model, depth = arch.rsplit('-', 1)
        return {'model': model, 'model_depth': int(depth)}
    return {}


def _check_option_names(names: Iterable[str]) -> None:
    unknown = sorted(set(names) - set(MODEL_OPTION_NAMES))
    if unknown:
        raise TypeError(f"unknown model options {', '.join(unknown)}: "
                        f"valid ones are {', '.join(MODEL_OPTION_NAMES)}")


def load_model(path: PathLike, *, trust: bool = False, **overrides: Any) -> nn.Module:
    """A ready model (eval mode, on the CPU) from a checkpoint.

    Options come from the checkpoint's ``model_options`` when it records them; otherwise
    (the original's files) from ``arch`` and the keyword arguments, named like the CLI flags.
    Keyword arguments always win. ``trust``: see ``load_checkpoint_object``.
    """
    return model_from_checkpoint(load_checkpoint(path, trust=trust), str(path), **overrides)


def model_from_checkpoint(ckpt: Mapping[str, Any], source: str, **overrides: Any) -> nn.Module:
    """``load_model`` for a checkpoint already read with ``load_checkpoint`` (``source`` names it)."""
    _check_option_names(overrides)
    if ckpt.get('pretext'):
        raise CheckpointError(f"{source}: a --pretext {ckpt['pretext']} checkpoint has no classifier: "
                              'fine-tune it first (main.py --pretrain_path)')
    options = {**_options_from_checkpoint(ckpt), **overrides}
    model = generate_model(**options)
    load_state_dict_checked(model, ckpt['state_dict'], source=source, options=options)
    return model.eval()


def load_pretrained(path: PathLike, n_classes: int, n_pretrain_classes: int = 0, *,
                    trust: bool = False, **options: Any) -> nn.Module:
    """Fine-tuning start: build with the pretrain class count, load strictly, new head.

    ``n_pretrain_classes`` 0 takes the count recorded in one of our checkpoints. The head
    (``fc`` or ``classifier``) is replaced by a fresh Linear of ``n_classes`` outputs. A
    ``--pretext`` checkpoint (a trunk without a head) loads the same way. ``trust``: see
    ``load_checkpoint_object``.
    """
    _check_option_names(options)
    ckpt = load_checkpoint(path, trust=trust)
    if not n_pretrain_classes:
        n_pretrain_classes = _options_from_checkpoint(ckpt).get('n_classes', 0)
        if not n_pretrain_classes:
            found = infer_options(ckpt['state_dict']).get('n_classes')
            hint = f' (its head has {found} outputs: --n_pretrain_classes {found})' if found else ''
            raise CheckpointError(f'{path}: pass --n_pretrain_classes with --pretrain_path{hint}')
    build = {**options, 'n_classes': n_pretrain_classes}
    model = generate_model(**build)
    state = ckpt['state_dict']
    if ckpt.get('pretext'):  # self-supervised: the trunk only; the head is replaced below anyway
        head = head_name(model)
        state = {**{f'{head}.{k}': v for k, v in getattr(model, head).state_dict().items()},
                 **strip_prefixes(state)}
    load_state_dict_checked(model, state, source=str(path), options=build, class_flag='n_pretrain_classes')
    return replace_head(model, n_classes)
