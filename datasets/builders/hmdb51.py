"""HMDB-51 annotation JSONs, one per official split (``python -m util_scripts.hmdb51_json`` runs it)."""
import argparse
import re
from pathlib import Path
from typing import Dict, List, Tuple

from datasets.formats.annotation_build import DiskCache, build_annotation_file
from datasets.formats.annotation_json import AnnotationError, Row
from datasets.formats.text_inputs import read_lines, require_dir

SPLIT_FILE = re.compile(r'^(?P<label>.+)_test_split(?P<k>\d+)\.txt$')
SUBSET_OF_ID = {'1': 'training', '2': 'validation', '0': None}


def find_split_files(split_dir: Path) -> Dict[int, List[Tuple[str, Path]]]:
    """{k: [(class, path), ...]} for the ``<class>_test_split<k>.txt`` files, sorted."""
    found: Dict[int, List[Tuple[str, Path]]] = {}
    for path in sorted(split_dir.iterdir()):
        match = SPLIT_FILE.match(path.name)
        if match and path.is_file():
            found.setdefault(int(match['k']), []).append((match['label'], path))
    return found


def read_split_file(path: Path, label: str) -> List[Row]:
    """(video_id, subset, label) rows of one split file; id 0 lines are left out."""
    rows = []
    for i, line in enumerate(read_lines(path), 1):
        parts = line.split()
        if len(parts) != 2 or parts[1] not in SUBSET_OF_ID:
            raise AnnotationError(f'{path}: line {i}: expected "video.avi 0|1|2", got {line!r}')
        subset = SUBSET_OF_ID[parts[1]]
        if subset is not None:
            rows.append((parts[0].split('.')[0], subset, label))
    return rows


def build(args: argparse.Namespace) -> None:
    """Write one JSON per split that has split files; labels are the classes of all of them."""
    split_files = find_split_files(require_dir(args.split_dir, 'split folder'))
    if not split_files:
        raise AnnotationError(f'no <class>_test_split<k>.txt files in {args.split_dir}')
    require_dir(args.video_root, 'video root')
    labels = sorted({label for files in split_files.values() for label, _ in files})
    cache = DiskCache()
    for k in (1, 2, 3):
        if k not in split_files:
            print(f'note: split {k} skipped: no *_test_split{k}.txt in {args.split_dir}')
            continue
        rows = [row for label, path in split_files[k] for row in read_split_file(path, label)]
        build_annotation_file(args.dst_dir / f'hmdb51_{k}.json', labels, rows,
                              args.video_root, args.file_type, cache)
