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

from util_scripts.annotation_utils import (FILE_TYPES, AnnotationError, DiskCache, Row,
                                           print_error, read_lines, require_dir,
                                           require_file, write_annotation_json)


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


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line arguments (the original's positionals, plus optional flags)."""
    parser = argparse.ArgumentParser(prog='python -m util_scripts.ucf101_json',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('ann_dir', metavar='ANN_DIR', type=Path,
                        help='folder with classInd.txt, trainlist0k.txt, testlist0k.txt')
    parser.add_argument('video_root', metavar='VIDEO_ROOT', type=Path,
                        help='videos as VIDEO_ROOT/<class>/<id>[.hdf5|.<ext>]')
    parser.add_argument('dst_dir', metavar='DST_DIR', type=Path,
                        help='folder for ucf101_0{1,2,3}.json')
    parser.add_argument('--file_type', choices=FILE_TYPES, default='jpg',
                        help='jpg frame folders, hdf5 files or video files (default: jpg)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    args = parse_args(argv)
    try:
        labels = read_class_index(require_file(args.ann_dir / 'classInd.txt', 'class index'))
        require_dir(args.video_root, 'video root')
        cache = DiskCache()
        written = 0
        for k in (1, 2, 3):
            train_list = args.ann_dir / f'trainlist0{k}.txt'
            test_list = args.ann_dir / f'testlist0{k}.txt'
            absent = [p.name for p in (train_list, test_list) if not p.is_file()]
            if absent:
                print(f'note: split {k} skipped: {" and ".join(absent)} not found in '
                      f'{args.ann_dir}')
                continue
            rows = read_split_list(train_list, 'training')
            rows += read_split_list(test_list, 'validation')
            write_annotation_json(args.dst_dir / f'ucf101_0{k}.json', labels, rows,
                                  args.video_root, args.file_type, cache)
            written += 1
        if not written:
            raise AnnotationError(f'no split files (trainlist0k.txt and testlist0k.txt) in '
                                  f'{args.ann_dir}')
    except AnnotationError as e:
        return print_error(e)
    return 0


if __name__ == '__main__':
    sys.exit(main())
