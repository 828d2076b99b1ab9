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

from datasets.formats import cli
from datasets.formats.annotation_build import build_annotation_file
from datasets.formats.annotation_json import AnnotationError, Row
from datasets.formats.text_inputs import read_csv_rows, require_dir

CSV_FILES = (('trainingSet.csv', 'training'), ('validationSet.csv', 'validation'),
             ('testingSet.csv', 'testing'))
ARGUMENTS = {'dir': 'folder with moments_categories.txt, trainingSet.csv, validationSet.csv '
                    'and (optional) testingSet.csv',
             'video_root': cli.TEST_FOLDER, 'dst_json': 'JSON file to write'}


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


def build(args: argparse.Namespace) -> None:
    """Read the category list and the split CSVs; write the JSON."""
    labels = read_categories(args.dir / 'moments_categories.txt')
    rows: List[Row] = []
    for name, subset in CSV_FILES:
        path = args.dir / name
        if subset == 'testing' and not path.is_file():
            print(f'note: no {name}; no testing entries')
            continue
        rows.extend(read_split(path, subset))
    require_dir(args.video_root, 'video root')
    build_annotation_file(args.dst_json, labels, rows, args.video_root, args.file_type)


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point: the ARGUMENTS paths (the original's positionals) and --file_type."""
    return cli.run(lambda: build(cli.parse_paths('mit_json', __doc__, ARGUMENTS, argv)))


if __name__ == '__main__':
    sys.exit(main())
