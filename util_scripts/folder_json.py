"""Annotation JSON for a custom dataset laid out as ROOT/<class>/<video>.

    python -m util_scripts.folder_json ROOT DST_JSON [--file_type jpg|hdf5|video]
                                       [--val_fraction 0.2] [--seed 0]

Videos are frame folders (jpg), ``<id>.hdf5`` files or video files (any video extension).
``labels`` are the class folder names, sorted. Each class is split on its own, reproducibly
for a given seed: about ``val_fraction`` of its videos go to ``validation``; a class with
two or more videos always keeps at least one video in each subset (unless val_fraction is 0),
and a class with one video keeps it for training, at every fraction.
When the folders hold no video of ``--file_type`` the error says which file type they do hold.
"""
import sys
from typing import List, Optional

from common import cli
from datasets.builders.folders import build
from datasets.formats import arguments


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = cli.parser('folder_json', __doc__)
    cli.add_paths(parser, root='dataset folder: ROOT/<class>/<video>', dst_json='JSON file to write')
    arguments.add_file_type(parser)
    parser.add_argument('--val_fraction', type=float, default=0.2,
                        help='share of each class put in validation (default: 0.2)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the split (default: 0)')
    return cli.run(lambda: build(parser.parse_args(argv)))


if __name__ == '__main__':
    sys.exit(main())
