"""UCF-101 annotation JSONs, one per official split.

    python -m util_scripts.ucf101_json ANN_DIR VIDEO_ROOT DST_DIR [--file_type jpg|hdf5|video]

Reads ``ANN_DIR/classInd.txt`` ("idx name"; labels in file order), ``trainlist0{1,2,3}.txt``
("Class/v_Class_gXX_cYY.avi idx") and ``testlist0{1,2,3}.txt`` ("Class/v_...avi"), and writes
``DST_DIR/ucf101_0{1,2,3}.json``; the test lists become subset ``validation``. Keys are the
file name up to its first dot. A split whose list files are absent is skipped with a note.
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

from datasets.formats import cli
from datasets.formats.annotation_build import DiskCache, build_annotation_file
from datasets.formats.annotation_json import AnnotationError, Row
from datasets.formats.text_inputs import read_lines, require_dir, require_file

ARGUMENTS = {'ann_dir': 'folder with classInd.txt, trainlist0k.txt, testlist0k.txt',
             'video_root': cli.CLASS_FOLDERS, 'dst_dir': 'folder for ucf101_0{1,2,3}.json'}


def read_class_index(path: Path) -> List[str]:
    """Class names of classInd.txt in file order."""
    labels = []
    for i, line in enumerate(read_lines(path), 1):
        parts = line.split()
        if len(parts) != 2:
            raise AnnotationError(f'{path}: line {i}: expected "index name", got {line!r}')
        labels.append(parts[1])
    return labels


def read_split_list(path: Path, subset: str) -> List[Row]:
    """(video_id, subset, label) rows of a trainlist/testlist file."""
    rows = []
    for i, line in enumerate(read_lines(path), 1):
        parts = line.split()[0].replace('\\', '/').split('/')
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise AnnotationError(f'{path}: line {i}: expected "Class/video.avi", got {line!r}')
        label, name = parts
        rows.append((name.split('.')[0], subset, label))
    return rows


def build(args: argparse.Namespace) -> None:
    """Write one JSON per split whose two list files exist."""
    labels = read_class_index(require_file(args.ann_dir / 'classInd.txt', 'class index'))
    require_dir(args.video_root, 'video root')
    cache = DiskCache()
    written = 0
    for k in (1, 2, 3):
        lists = [args.ann_dir / f'{kind}list0{k}.txt' for kind in ('train', 'test')]
        absent = [p.name for p in lists if not p.is_file()]
        if absent:
            print(f'note: split {k} skipped: {" and ".join(absent)} not found in {args.ann_dir}')
            continue
        rows = read_split_list(lists[0], 'training') + read_split_list(lists[1], 'validation')
        build_annotation_file(args.dst_dir / f'ucf101_0{k}.json', labels, rows,
                              args.video_root, args.file_type, cache)
        written += 1
    if not written:
        raise AnnotationError(f'no split files (trainlist0k.txt and testlist0k.txt) in '
                              f'{args.ann_dir}')


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point: the ARGUMENTS paths (the original's positionals) and --file_type."""
    return cli.run(lambda: build(cli.parse_paths('ucf101_json', __doc__, ARGUMENTS, argv)))


if __name__ == '__main__':
    sys.exit(main())
