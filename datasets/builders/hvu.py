"""Multi-label annotation JSON for HVU (Holistic Video Understanding) from its CSV files (``python -m util_scripts.hvu_json`` runs it)."""
import argparse
import collections
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set

from datasets.formats.annotation_build import build_annotation_file
from datasets.formats.annotation_json import AnnotationError, Row
from datasets.formats.text_inputs import clip_key, read_csv_dicts, require_dir

SPLITS = (('training', ('HVU_Train_*.csv', 'train.csv')), ('validation', ('HVU_Val_*.csv', 'val.csv')))


def find_csv(csv_dir: Path, patterns: Sequence[str]) -> Path:
    """The first file matching one of ``patterns`` in ``csv_dir`` (newest version first)."""
    for pattern in patterns:
        found = sorted(csv_dir.glob(pattern), reverse=True)
        if found:
            return found[0]
    raise AnnotationError(f"{csv_dir}: no {' or '.join(patterns)} file")


def read_split(path: Path, subset: str) -> List[Row]:
    """(video_id, subset, [tags]) rows of one HVU CSV file."""
    rows = read_csv_dicts(path, ('Tags', 'youtube_id', 'time_start', 'time_end'))
    out: List[Row] = []
    for i, row in enumerate(rows, 1):
        tags = [t.strip() for t in row['Tags'].split('|') if t.strip()]
        out.append((clip_key(row, path, i), subset, list(dict.fromkeys(tags))))
    return out


def category_tags(csv_dir: Path, categories: Sequence[str]) -> Set[str]:
    """The tags of the given categories, from the tag-category CSV."""
    path = find_csv(csv_dir, ('HVU_Tags_Categories_*.csv', 'tags_categories.csv'))
    rows = read_csv_dicts(path, ('Tag', 'Category'))
    known = {r['Category'] for r in rows}
    unknown = [c for c in categories if c not in known]
    if unknown:
        raise AnnotationError(f"{path}: no category {unknown[0]!r} (it has {', '.join(sorted(known))})")
    return {r['Tag'] for r in rows if r['Category'] in categories}


def select_labels(rows: List[Row], keep: Optional[Set[str]], min_videos: int) -> List[str]:
    """Sorted tags of the training rows, limited to ``keep`` and to tags with enough videos."""
    counts: Dict[str, int] = collections.Counter(
        t for _, subset, tags in rows if subset == 'training' for t in (tags or []))
    return sorted(t for t, n in counts.items() if n >= min_videos and (keep is None or t in keep))


def restrict(rows: List[Row], labels: Sequence[str]) -> List[Row]:
    """Rows with their tags limited to ``labels``; rows left with no tag are dropped."""
    known = set(labels)
    out: List[Row] = []
    for video_id, subset, tags in rows:
        kept = [t for t in (tags or []) if t in known]
        if kept:
            out.append((video_id, subset, kept))
    return out


def build(args: argparse.Namespace) -> None:
    """Read the split CSVs, choose the tags to keep, write the JSON."""
    require_dir(args.csv_dir, 'CSV folder')
    rows = [row for subset, patterns in SPLITS for row in read_split(find_csv(args.csv_dir, patterns), subset)]
    require_dir(args.video_root, 'video root')
    keep = category_tags(args.csv_dir, args.categories) if args.categories else None
    labels = select_labels(rows, keep, args.min_videos)
    if not labels:
        raise AnnotationError(f'{args.csv_dir}: no tag is left to train on')
    kept = restrict(rows, labels)
    if len(kept) < len(rows):
        print(f'note: {len(rows) - len(kept)} videos have none of the {len(labels)} kept tags and are left out')
    build_annotation_file(args.dst_json, labels, kept, args.video_root, args.file_type)
