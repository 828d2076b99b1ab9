"""Kinetics annotation JSON from the official CSV files (``python -m util_scripts.kinetics_json`` runs it)."""
import argparse
from pathlib import Path
from typing import List, Optional, Tuple

from datasets.formats.annotation_build import build_annotation_file
from datasets.formats.annotation_json import AnnotationError, Row
from datasets.formats.text_inputs import clip_key, read_csv_dicts, require_dir

SPLITS = (('train', 'training'), ('val', 'validation'), ('test', 'testing'))
PLAIN_NAMES = {'train': 'train', 'val': 'validate', 'test': 'test'}
KEY_COLUMNS = ('youtube_id', 'time_start', 'time_end')


def csv_candidates(csv_dir: Path, n_classes: int, split: str) -> List[Path]:
    """The file names tried for one split, the original's first."""
    return [csv_dir / f'kinetics-{n_classes}_{split}.csv', csv_dir / f'kinetics_{split}.csv',
            csv_dir / f'{PLAIN_NAMES[split]}.csv']


def find_csv(csv_dir: Path, n_classes: int, split: str) -> Optional[Path]:
    """The first existing CSV file of a split, or None."""
    return next((p for p in csv_candidates(csv_dir, n_classes, split) if p.is_file()), None)


def read_split(path: Path, subset: str) -> List[Row]:
    """(video_id, subset, label) rows of one CSV file; testing rows carry no label."""
    required = KEY_COLUMNS if subset == 'testing' else ('label',) + KEY_COLUMNS
    rows = read_csv_dicts(path, required)
    return [(clip_key(row, path, i), subset, None if subset == 'testing' else row['label'])
            for i, row in enumerate(rows, 1)]


def first_seen_labels(rows: List[Row]) -> List[str]:
    """Unique labels in order of first appearance."""
    return list(dict.fromkeys(label for _, _, label in rows if label is not None))


def read_splits(csv_dir: Path, n_classes: int) -> Tuple[List[str], List[Row]]:
    """(labels in train-CSV order, rows of every split); the test CSV is optional."""
    rows: List[Row] = []
    labels: List[str] = []
    for split, subset in SPLITS:
        path = find_csv(csv_dir, n_classes, split)
        if path is None:
            tried = csv_candidates(csv_dir, n_classes, split)
            if split == 'test':
                print(f'note: no test CSV ({tried[0].name}); no testing entries')
                continue
            raise AnnotationError(f'CSV file not found: {tried[0]} (also tried '
                                  f'{", ".join(p.name for p in tried[1:])})')
        split_rows = read_split(path, subset)
        if split == 'train':
            labels = first_seen_labels(split_rows)
        rows.extend(split_rows)
    return labels, rows


def build(args: argparse.Namespace) -> None:
    """Read the split CSVs; write the JSON."""
    labels, rows = read_splits(args.csv_dir, args.n_classes)
    require_dir(args.video_root, 'video root')
    if args.sort_labels:
        labels = sorted(labels)
    if len(labels) != args.n_classes:
        print(f'note: the train CSV has {len(labels)} labels, N_CLASSES is {args.n_classes}')
    build_annotation_file(args.dst_json, labels, rows, args.video_root, args.file_type)
