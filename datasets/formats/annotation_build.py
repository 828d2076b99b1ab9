"""Building an annotation file from (video_id, subset, label) rows: segments from disk, a report.

An entry whose video is not on disk is kept without a segment, so loaders skip it, and is
reported with the empty, unreadable and duplicated ones and the labels missing from
``labels``. No torch; video files are probed with PyAV.
"""
import collections
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Union

from common.progress import progress
from datasets.formats.annotation_json import (SHOWN, SUBSETS, Row, build_database, entry_labels, first_ids, segment_for,
                                              write_annotation_json)
from datasets.formats.video_layout import count_frames, unreadable_errors, video_path_for

PathLike = Union[str, os.PathLike]


@dataclass
class Findings:
    """What a build noticed besides the entries: ids that need the user's attention."""
    duplicates: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    empty: List[str] = field(default_factory=list)
    unreadable: List[str] = field(default_factory=list)


@dataclass
class DiskCache:
    """Class-folder listings and frame counts, shared by builds over the same videos."""
    listings: Dict[Path, Dict[str, Path]] = field(default_factory=dict)
    counts: Dict[Path, int] = field(default_factory=dict)


def add_segments(database: Dict[str, Dict[str, Any]], video_root: PathLike, file_type: str,
                 cache: Optional[DiskCache] = None, desc: str = 'counting frames') -> Findings:
    """Give every entry found on disk its segment; report missing, empty and broken videos."""
    cache = cache if cache is not None else DiskCache()
    broken = unreadable_errors()
    findings = Findings()
    for video_id, entry in progress(list(database.items()), total=len(database), desc=desc, unit='videos'):
        names, multi = entry_labels(entry)
        # multi-label videos sit in the root; unlabelled (testing) ones in the test folder
        folder = '' if multi else (names[0] if names else None)
        path = video_path_for(video_root, folder, video_id, file_type, cache.listings)
        if path is None:
            findings.missing.append(video_id)
            continue
        if path not in cache.counts:
            try:
                cache.counts[path] = count_frames(path, file_type)
            except broken:
                findings.unreadable.append(video_id)
                continue
        n_frames = cache.counts[path]
        if n_frames == 0:
            findings.empty.append(video_id)
        entry['annotations']['segment'] = segment_for(n_frames, file_type)
    return findings


def preview(ids: Sequence[str], k: int = SHOWN) -> str:
    """``count (id1, id2, ...)`` or ``0``."""
    return f'{len(ids)} ({first_ids(ids, k)})' if ids else '0'


def subset_counts(database: Dict[str, Dict[str, Any]]) -> str:
    """``N (training a, validation b, ...)`` for a database."""
    counts = collections.Counter(entry.get('subset') for entry in database.values())
    order = [s for s in SUBSETS if counts[s]] + sorted(
        (s for s in counts if s not in SUBSETS), key=str)
    parts = ', '.join(f'{s} {counts[s]}' for s in order)
    return f'{len(database)} ({parts})' if parts else '0'


def unknown_labels(data: Dict[str, Any]) -> Dict[str, int]:
    """Labels used by entries but absent from ``labels``, with their entry counts."""
    known = set(data['labels'])
    counts: Dict[str, int] = collections.Counter()
    for entry in data['database'].values():
        for name in entry_labels(entry)[0]:
            if name not in known:
                counts[name] += 1
    return dict(counts)


def format_report(title: str, data: Dict[str, Any], findings: Findings) -> str:
    """The end-of-run summary of one JSON file."""
    unknown = unknown_labels(data)
    unknown_text = preview([f'{label} x{n}' for label, n in unknown.items()])
    lines = [
        title,
        f'  entries: {subset_counts(data["database"])}',
        f'  classes: {len(data["labels"])}',
        f'  missing on disk (kept without a segment): {preview(findings.missing)}',
        f'  no frames: {preview(findings.empty)}',
        f'  unreadable: {preview(findings.unreadable)}',
        f"  labels not in 'labels': {unknown_text}",
        f'  duplicate ids (one entry kept per id): {preview(findings.duplicates)}',
    ]
    return '\n'.join(lines)


def build_annotation_file(dst: PathLike, labels: List[str], rows: Iterable[Row],
                          video_root: PathLike, file_type: str,
                          cache: Optional[DiskCache] = None,
                          duplicates: Sequence[str] = ()) -> Findings:
    """Build the database from rows, add segments, write ``dst`` atomically, print the report.

    ``duplicates``: ids already known to be duplicated (reported with those of the rows).
    """
    database, row_duplicates = build_database(rows)
    findings = add_segments(database, video_root, file_type, cache, desc=Path(dst).name)
    findings.duplicates = list(duplicates) + row_duplicates
    data = {'labels': list(labels), 'database': database}
    path = write_annotation_json(dst, data)
    print(format_report(f'{path}:', data, findings))
    return findings
