"""Strip DataParallel/DDP ``module.`` (and torch.compile ``_orig_mod.``) key prefixes.

    python -m util_scripts.remove_dataparallel FILE [--dst_file_path DST]

Only keys that carry a prefix change; a clean file is left untouched. Everything else in
the file (epoch, arch, optimizer, ...) is kept. The result is written atomically, in place
unless ``--dst_file_path`` is given.
"""
import sys
from pathlib import Path
from typing import List, Optional

from common import cli
from models.dataparallel import strip_checkpoint_file
from models.safe_load import TRUST_HELP


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = cli.parser('remove_dataparallel', __doc__)
    parser.add_argument('file_path', type=Path)
    parser.add_argument('--dst_file_path', type=Path, default=None,
                        help='Where to write (default: overwrite FILE)')
    parser.add_argument('--trust_checkpoint', action='store_true', help=TRUST_HELP)
    args = parser.parse_args(argv)
    return cli.run(lambda: _strip(args.file_path, args.dst_file_path or args.file_path, args.trust_checkpoint))


def _strip(src: Path, dst: Path, trust: bool) -> None:
    changed = strip_checkpoint_file(src, dst, trust)
    if changed == 0:
        print(f'{src}: no prefixed keys; left unchanged')
    else:
        print(f'{dst}: stripped the wrapper prefix from {changed} keys')


if __name__ == '__main__':
    sys.exit(main())
