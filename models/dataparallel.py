"""Stripping the DataParallel/DDP ``module.`` (and torch.compile ``_orig_mod.``) key prefixes."""
from pathlib import Path
from typing import Any, Tuple

import torch

from common.atomic import atomic_write, atomic_write_bytes
from models.safe_load import CheckpointError
from models.state_dicts import load_checkpoint_object, state_dict_key, strip_prefixes


def strip_checkpoint(obj: Any) -> Tuple[Any, int]:
    """Return the checkpoint with prefixes stripped and the number of keys that changed."""
    key = state_dict_key(obj)
    if key is None:
        raise CheckpointError('no state_dict found')
    sd = obj[key] if key else obj
    clean = strip_prefixes(sd)
    changed = sum(1 for old, new in zip(sd, clean) if old != new)
    return (clean if not key else {**obj, key: clean}), changed


def strip_checkpoint_file(src: Path, dst: Path, trust: bool = False) -> int:
    """Write ``src`` without prefixes to ``dst`` atomically; return how many keys changed.

    Everything else in the file is kept. A clean ``src`` is copied byte for byte (left alone
    when ``dst`` is ``src``). ``trust`` allows full unpickling of ``src``.
    """
    obj = load_checkpoint_object(src, trust=trust)
    try:
        clean, changed = strip_checkpoint(obj)
    except CheckpointError as e:
        raise CheckpointError(f'{src}: {e}') from e
    if changed:
        atomic_write(dst, lambda f: torch.save(clean, f))
    elif Path(dst).resolve() != Path(src).resolve():
        atomic_write_bytes(dst, Path(src).read_bytes())
    return changed
