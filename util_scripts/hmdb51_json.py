"""HMDB-51 annotation JSONs, one per official split.

    python -m util_scripts.hmdb51_json SPLIT_DIR VIDEO_ROOT DST_DIR [--file_type jpg|hdf5|video]

Reads every ``SPLIT_DIR/<class>_test_split<k>.txt`` (lines "video.avi id": 1 training,
2 validation, 0 left out) and writes ``DST_DIR/hmdb51_{1,2,3}.json``. ``labels`` is the
sorted set of classes over all split files. Keys are the file name up to its first dot.
"""
import sys
from typing import List, Optional

from common import cli
from datasets.builders.hmdb51 import build
from datasets.formats import arguments

ARGUMENTS = {'split_dir': 'folder with the <class>_test_split<k>.txt files',
             'video_root': arguments.CLASS_FOLDERS, 'dst_dir': 'folder for hmdb51_{1,2,3}.json'}


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point: the ARGUMENTS paths (the original's positionals) and --file_type."""
    return cli.run(lambda: build(arguments.parse_paths('hmdb51_json', __doc__, ARGUMENTS, argv)))


if __name__ == '__main__':
    sys.exit(main())
