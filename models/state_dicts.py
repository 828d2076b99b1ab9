"""State dicts as files hold them: reading one safely, and fitting one onto a model's keys and shapes.

``read_state_dict`` finds the weights in any file (a bare state_dict, ``state_dict``, ``model``)
without wrapper prefixes; ``fit_state_dict`` is the one key-matching loop: loading a checkpoint
strictly, inflating 2D ImageNet weights into 3D kernels and filling both streams of a two-stream
model all take a target's values from a source through it, and report what does not fit alike.
"""
import collections
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from models.safe_load import CheckpointError, torch_load_cpu

WRAPPER_PREFIXES = ('module.', '_orig_mod.')
PathLike = Union[str, os.PathLike]
Shape = Tuple[int, ...]


def strip_prefixes(state_dict: Mapping[str, Any]) -> 'collections.OrderedDict[str, Any]':
    """Remove ``module.`` and ``_orig_mod.`` wrapper prefixes where present (any nesting)."""
    out: 'collections.OrderedDict[str, Any]' = collections.OrderedDict()
    for key, value in state_dict.items():
        while key.startswith(WRAPPER_PREFIXES):
            key = key.split('.', 1)[1]
        out[key] = value
    return out


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def state_dict_key(obj: Any) -> Optional[str]:
    """Where a loaded file keeps its weights: '' (bare state_dict), 'state_dict', 'model' or None."""
    if _is_state_dict(obj):
        return ''
    for key in ('state_dict', 'model'):
        if isinstance(obj, Mapping) and _is_state_dict(obj.get(key)):
            return key
    return None


def load_checkpoint_object(path: PathLike, trust: bool = False) -> Any:
    """The raw object in a checkpoint file, or a one-line ``CheckpointError`` naming the file.

    ``trust`` allows full unpickling of files that need more than ``safe_load.SAFE_GLOBALS``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f'{path}: no such checkpoint file')
    try:
        return torch_load_cpu(path, trust=trust)
    except CheckpointError:
        raise
    except Exception as e:  # torch raises many types for damaged files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        first = re.split(r'(?<=[.!]) ', first)[0]  # torch's advice follows the first sentence
        raise CheckpointError(f'{path}: not a readable PyTorch checkpoint ({first})') from e


def state_dict_key_of(obj: Any, path: PathLike) -> str:
    """``state_dict_key`` of a file's object, or a ``CheckpointError`` naming the file and its top-level keys."""
    key = state_dict_key(obj)
    if key is None:
        keys = ', '.join(map(str, list(obj)[:8])) if isinstance(obj, Mapping) else type(obj).__name__
        raise CheckpointError(f'{path}: no state_dict found (top-level keys: {keys})')
    return key


def read_state_dict(path: PathLike, trust: bool = False) -> Mapping[str, torch.Tensor]:
    """The state_dict in the file at ``path``, without wrapper prefixes: of any network (2D ImageNet
    and torchvision video weights too, which ``load_checkpoint`` refuses). ``trust``: as there."""
    obj = load_checkpoint_object(path, trust=trust)
    key = state_dict_key_of(obj, path)
    return strip_prefixes(obj[key] if key else obj)


@dataclass
class Fit:
    """A target state_dict with the values a source gave it, and what did not fit (in the source's key names)."""
    state_dict: Dict[str, torch.Tensor]
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[Tuple[str, Shape, Shape]] = field(default_factory=list)  # key, source shape, target shape

    @property
    def fits(self) -> bool:
        """Whether every target key got a value of its shape and every source key was used."""
        return not (self.missing or self.unexpected or self.mismatched)


def fit_state_dict(target: Mapping[str, torch.Tensor], source: Mapping[str, torch.Tensor],
                   source_key: Callable[[str], Optional[str]] = lambda key: key,
                   convert: Optional[Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor]] = None) -> Fit:
    """Each target key's value from ``source[source_key(key)]`` (None: keep the target's own value).

    ``convert(target_key, value, target_value)`` may reshape a value first (inflation); a value
    that still has another shape is mismatched. Source keys no target key asked for are unexpected.
    """
    out = dict(target)
    fit = Fit(out)
    used = set()
    for key, want in target.items():
        name = source_key(key)
        if name is None:
            continue
        if name not in source:
            fit.missing.append(name)
            continue
        used.add(name)
        value = source[name] if convert is None else convert(key, source[name], want)
        if tuple(value.shape) != tuple(want.shape):
            fit.mismatched.append((name, tuple(value.shape), tuple(want.shape)))
            continue
        out[key] = value.to(want.dtype)
    fit.unexpected = [k for k in source if k not in used]
    return fit


def key_list(keys: Sequence[str], limit: int = 4) -> str:
    """The first ``limit`` keys, comma-separated, and how many more."""
    shown = ', '.join(keys[:limit])
    return shown + (f', ... {len(keys) - limit} more' if len(keys) > limit else '')


def misfit_error(fit: Fit) -> CheckpointError:
    """'the 2D weights do not fit: unexpected: ...; shape mismatch: ...; missing: ...' (the first 4 of each)."""
    mismatched = [f'{k}: {list(got)} vs {list(want)}' for k, got, want in fit.mismatched]
    parts = [f'{name}: {", ".join(keys[:4])}' + (' ...' if len(keys) > 4 else '')
             for name, keys in (('unexpected', fit.unexpected), ('shape mismatch', mismatched),
                                ('missing', list(dict.fromkeys(fit.missing)))) if keys]
    return CheckpointError('the 2D weights do not fit: ' + '; '.join(parts))
