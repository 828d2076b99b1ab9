"""UCF-101 annotation JSONs, one per official split.

    python -m util_scripts.ucf101_json ANN_DIR VIDEO_ROOT DST_DIR [--file_type jpg|hdf5|video]

Reads ``ANN_DIR/classInd.txt`` ("idx name"; labels in file order), ``trainlist0{1,2,3}.txt``
("Class/v_Class_gXX_cYY.avi idx") and ``testlist0{1,2,3}.txt`` ("Class/v_...avi"), and writes
``DST_DIR/ucf101_0{1,2,3}.json``; the test lists become subset ``validation``. Keys are the
file name up to its first dot. A split whose list files are absent is skipped with a note.
"""
import sys
from typing import List, Optional

from common import cli
from datasets.builders.ucf101 import build
from datasets.formats import arguments

ARGUMENTS = {'ann_dir': 'folder with classInd.txt, trainlist0k.txt, testlist0k.txt',
             'video_root': arguments.CLASS_FOLDERS, 'dst_dir': 'folder for ucf101_0{1,2,3}.json'}


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point: the ARGUMENTS paths (the original's positionals) and --file_type."""
    return cli.run(lambda: build(**vars(arguments.parse_paths('ucf101_json', __doc__, ARGUMENTS, argv))))


if __name__ == '__main__':
    sys.exit(main())
