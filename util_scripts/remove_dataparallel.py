"""Strip DataParallel/DDP ``module.`` (and torch.compile ``_orig_mod.``) key prefixes.

    python -m util_scripts.remove_dataparallel FILE [--dst_file_path DST]

Only keys that carry a prefix change; a clean file is left untouched. Everything else in
the file (epoch, arch, optimizer, ...) is kept. The result is written atomically, in place
unless ``--dst_file_path`` is given.
"""
import argparse
import sys
from pathlib import Path
from typing import Any, List, Optional, Tuple

import torch

from models.checkpoint import (CheckpointError, atomic_write, load_checkpoint_object,
                               state_dict_key, strip_prefixes)


def strip_checkpoint(obj: Any) -> Tuple[Any, int]:
    """Return the checkpoint with prefixes stripped and the number of keys that changed."""
    key = state_dict_key(obj)
    if key is None:
        raise CheckpointError('no state_dict found')
    sd = obj[key] if key else obj
    clean = strip_prefixes(sd)
    changed = sum(1 for old, new in zip(sd, clean) if old != new)
    return (clean if not key else {**obj, key: clean}), changed


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('file_path', type=Path)
    parser.add_argument('--dst_file_path', type=Path, default=None,
                        help='Where to write (default: overwrite FILE)')
    args = parser.parse_args(argv)
    dst = args.dst_file_path or args.file_path
    try:
        obj = load_checkpoint_object(args.file_path)
        try:
            clean, changed = strip_checkpoint(obj)
        except CheckpointError as e:
            raise CheckpointError(f'{args.file_path}: {e}') from e
    except CheckpointError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    if changed == 0:
        if dst.resolve() != args.file_path.resolve():
            data = args.file_path.read_bytes()
            atomic_write(dst, lambda f: f.write(data))
        print(f'{args.file_path}: no prefixed keys; left unchanged')
        return 0
    atomic_write(dst, lambda f: torch.save(clean, f))
    print(f'{dst}: stripped the wrapper prefix from {changed} keys')
    return 0


if __name__ == '__main__':
    sys.exit(main())
