"""Render a small action dataset as real encoded videos, in the UCF-101 layout with split files.

    python -m util_scripts.make_demo_dataset DST [--videos_per_class 24] [--frames 32] [--seed 0]

What the videos show and the layout written: see ``conversion/demo_videos.py``.
"""
import sys
from pathlib import Path
from typing import List, Optional

from common import cli
from conversion.demo_videos import CLASSES, GROUPS, make_demo_dataset


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = cli.parser('make_demo_dataset', __doc__)
    parser.add_argument('dst', type=Path)
    parser.add_argument('--videos_per_class', type=int, default=24)
    parser.add_argument('--frames', type=int, default=32)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.videos_per_class < GROUPS or args.frames < 2:
        return cli.fail(f'need --videos_per_class >= {GROUPS} and --frames >= 2')
    splits = make_demo_dataset(args.dst, args.videos_per_class, args.frames, args.seed)
    print(f'{len(CLASSES) * args.videos_per_class} videos in {args.dst / "videos"}, splits in {splits}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
