"""Convert torchvision video ResNet weights into a checkpoint of this framework.

    python -m util_scripts.convert_torchvision_weights SRC DST --arch r3d_18|r2plus1d_18

SRC is a torchvision ``state_dict`` file (e.g. ``r3d_18-b3b3357e.pth``). DST records the
model options that reproduce torchvision's network exactly, its normalisation and, for
400-class weights, the Kinetics-400 class names that torchvision ships.
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

from common import cli
from models.safe_load import TRUST_HELP
from models.torchvision_weights import ARCH_OPTIONS, convert


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = cli.parser('convert_torchvision_weights', __doc__)
    parser.add_argument('src', type=Path, help='torchvision state_dict (.pth)')
    parser.add_argument('dst', type=Path, help='checkpoint to write')
    parser.add_argument('--arch', required=True, choices=sorted(ARCH_OPTIONS))
    parser.add_argument('--trust_checkpoint', action='store_true', help=TRUST_HELP)
    args = parser.parse_args(argv)
    return cli.run(lambda: _convert(args))


def _convert(args: argparse.Namespace) -> None:
    out = convert(args.src, args.dst, args.arch, args.trust_checkpoint)
    opts = ' '.join(f'--{k} {v}' if not isinstance(v, bool) else f'--{k}'
                    for k, v in ARCH_OPTIONS[args.arch].items() if v is not False)
    print(f'{out}: torchvision {args.arch} as {opts}; load it with models.load_model({str(out)!r})')


if __name__ == '__main__':
    sys.exit(main())
