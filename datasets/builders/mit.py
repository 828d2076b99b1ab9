"""Moments in Time annotation JSON (``python -m util_scripts.mit_json`` runs it)."""
import argparse
from pathlib import Path, PurePosixPath
from typing import List

from datasets.formats.annotation_build import build_annotation_file
from datasets.formats.annotation_json import AnnotationError, Row
from datasets.formats.text_inputs import read_csv_rows, require_dir

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
