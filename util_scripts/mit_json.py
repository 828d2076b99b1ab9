"""Moments in Time annotation JSON.

    python -m util_scripts.mit_json DIR VIDEO_ROOT DST_JSON [--file_type jpg|hdf5|video]

Reads ``DIR/moments_categories.txt`` (label in column 0, labels in file order),
``trainingSet.csv`` and ``validationSet.csv`` (column 0 ``label/file.mp4``, column 1 the
label) and the optional ``testingSet.csv`` (column 0 ``file.mp4``). Keys are file stems.
Testing videos are looked up in ``VIDEO_ROOT/test``.
"""
import sys
from typing import List, Optional

from common import cli
from datasets.builders.mit import build
from datasets.formats import arguments

ARGUMENTS = {'dir': 'folder with moments_categories.txt, trainingSet.csv, validationSet.csv '
                    'and (optional) testingSet.csv',
             'video_root': arguments.TEST_FOLDER, 'dst_json': 'JSON file to write'}


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point: the ARGUMENTS paths (the original's positionals) and --file_type."""
    return cli.run(lambda: build(arguments.parse_paths('mit_json', __doc__, ARGUMENTS, argv)))


if __name__ == '__main__':
    sys.exit(main())
