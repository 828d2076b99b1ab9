"""Moments in Time annotation JSON.

    python -m util_scripts.mit_json DIR VIDEO_ROOT DST_JSON [--file_type jpg|hdf5|video]

Reads ``DIR/moments_categories.txt`` (label in column 0, labels in file order),
``trainingSet.csv`` and ``validationSet.csv`` (column 0 ``label/file.mp4``, column 1 the
label) and the optional ``testingSet.csv`` (column 0 ``file.mp4``). Keys are file stems.
Testing videos are looked up in ``VIDEO_ROOT/test``.
"""
import argparse
import sys
from pathlib import PurePosixPath, Path
from typing import List, Optional

from util_scripts.annotation_utils import (FILE_TYPES, AnnotationError, Row, print_error,
                                           read_csv_rows, require_dir, write_annotation_json)

CSV_FILES = (('trainingSet.csv', 'training'), ('validationSet.csv', 'validation'),
             ('testingSet.csv', 'testing'))


def read_categories(path: Path) -> List[str]:
    """Labels of moments_categories.txt (column 0) in file order."""
    return [row[0] for row in read_csv_rows(path)]


def read_split(path: Path, subset: str) -> List[Row]:
    """(video_id, subset, label) rows of one MiT CSV file; testing rows carry no label."""
    rows = []
    for i, row in enumerate(read_csv_rows(path), 1):
        name = row[0].replace('\\', '/')
        if subset == 'testing':
            rows.append((PurePosixPath(name).stem, subset, None))
            continue
        if len(row) < 2 or '/' not in name:
            raise AnnotationError(f'{path}: row {i}: expected "label/file.mp4,label,...", '
                                  f'got {",".join(row)!r}')
        rows.append((PurePosixPath(name).stem, subset, row[1]))
    return rows


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line arguments (the original's positionals, plus optional flags)."""
    parser = argparse.ArgumentParser(prog='python -m util_scripts.mit_json',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('dir_path', metavar='DIR', type=Path,
                        help='folder with moments_categories.txt, trainingSet.csv, '
                             'validationSet.csv and (optional) testingSet.csv')
    parser.add_argument('video_root', metavar='VIDEO_ROOT', type=Path,
                        help='videos as VIDEO_ROOT/<label>/<id>[.hdf5|.<ext>]; testing in test/')
    parser.add_argument('dst_json', metavar='DST_JSON', type=Path, help='JSON file to write')
    parser.add_argument('--file_type', choices=FILE_TYPES, default='jpg',
                        help='jpg frame folders, hdf5 files or video files (default: jpg)')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    args = parse_args(argv)
    try:
        labels = read_categories(args.dir_path / 'moments_categories.txt')
        rows: List[Row] = []
        for name, subset in CSV_FILES:
            path = args.dir_path / name
            if subset == 'testing' and not path.is_file():
                print(f'note: no {name}; no testing entries')
                continue
            rows.extend(read_split(path, subset))
        require_dir(args.video_root, 'video root')
        write_annotation_json(args.dst_json, labels, rows, args.video_root, args.file_type)
    except AnnotationError as e:
        return print_error(e)
    return 0


if __name__ == '__main__':
    sys.exit(main())
