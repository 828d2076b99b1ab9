"""Kinetics annotation JSON from the official CSV files.

    python -m util_scripts.kinetics_json CSV_DIR N_CLASSES VIDEO_ROOT {jpg,hdf5,video} DST_JSON
                                         [--sort_labels]

Reads ``CSV_DIR/kinetics-<N>_{train,val,test}.csv`` (the test file is optional; the names
``kinetics_{train,val,test}.csv`` and ``{train,validate,test}.csv`` are accepted too), columns
``label,youtube_id,time_start,time_end[,split]`` (the test file may lack ``label``). Keys are
``<youtube_id>_<%06d start>_<%06d end>``. ``labels`` keeps the order in which the train CSV
first uses each class, as the original did, so the class indices of released models match;
``--sort_labels`` sorts them instead. Testing videos are looked up in ``VIDEO_ROOT/test``.
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

from util_scripts.annotation_utils import (FILE_TYPES, AnnotationError, Row, print_error,
                                           read_csv_dicts, require_dir, write_annotation_json)

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


def video_key(row: dict, path: Path, index: int) -> str:
    """``<youtube_id>_<%06d start>_<%06d end>`` of one CSV row."""
    try:
        start, end = int(float(row['time_start'])), int(float(row['time_end']))
    except (TypeError, ValueError):
        raise AnnotationError(f'{path}: row {index}: time_start/time_end are not numbers '
                              f'({row.get("time_start")!r}, {row.get("time_end")!r})') from None
    return '%s_%06d_%06d' % (row['youtube_id'], start, end)


def read_split(path: Path, subset: str) -> List[Row]:
    """(video_id, subset, label) rows of one CSV file; testing rows carry no label."""
    required = KEY_COLUMNS if subset == 'testing' else ('label',) + KEY_COLUMNS
    rows = read_csv_dicts(path, required)
    return [(video_key(row, path, i), subset, None if subset == 'testing' else row['label'])
            for i, row in enumerate(rows, 1)]


def first_seen_labels(rows: List[Row]) -> List[str]:
    """Unique labels in order of first appearance."""
    return list(dict.fromkeys(label for _, _, label in rows if label is not None))


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line arguments (the original's positionals, plus optional flags)."""
    parser = argparse.ArgumentParser(prog='python -m util_scripts.kinetics_json',
                                     description=__doc__.splitlines()[0])
    parser.add_argument('csv_dir', metavar='CSV_DIR', type=Path,
                        help='folder with kinetics-<N>_{train,val,test}.csv (test optional)')
    parser.add_argument('n_classes', metavar='N_CLASSES', type=int,
                        help='400, 600 or 700: picks the CSV file names')
    parser.add_argument('video_root', metavar='VIDEO_ROOT', type=Path,
                        help='videos as VIDEO_ROOT/<label>/<id>[.hdf5|.<ext>]; testing in test/')
    parser.add_argument('file_type', metavar='FILE_TYPE', choices=FILE_TYPES,
                        help='jpg (frame folders), hdf5 or video (video files)')
    parser.add_argument('dst_json', metavar='DST_JSON', type=Path, help='JSON file to write')
    parser.add_argument('--sort_labels', action='store_true',
                        help='sort labels alphabetically instead of the train CSV order')
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    args = parse_args(argv)
    try:
        rows: List[Row] = []
        labels: List[str] = []
        for split, subset in SPLITS:
            path = find_csv(args.csv_dir, args.n_classes, split)
            if path is None:
                tried = csv_candidates(args.csv_dir, args.n_classes, split)
                if split == 'test':
                    print(f'note: no test CSV ({tried[0].name}); no testing entries')
                    continue
                raise AnnotationError(f'CSV file not found: {tried[0]} (also tried '
                                      f'{", ".join(p.name for p in tried[1:])})')
            split_rows = read_split(path, subset)
            if split == 'train':
                labels = first_seen_labels(split_rows)
            rows.extend(split_rows)
        require_dir(args.video_root, 'video root')
        if args.sort_labels:
            labels = sorted(labels)
        if len(labels) != args.n_classes:
            print(f'note: the train CSV has {len(labels)} labels, N_CLASSES is {args.n_classes}')
        write_annotation_json(args.dst_json, labels, rows, args.video_root, args.file_type)
    except AnnotationError as e:
        return print_error(e)
    return 0


if __name__ == '__main__':
    sys.exit(main())
