"""Annotation JSON files -> the list of videos a dataset serves.

Reads the original's format (``labels`` + ``database`` of ``{subset, annotations: {label,
segment}}``) and ActivityNet's official one (``taxonomy`` + ``annotations`` lists in seconds,
with the ``fps`` and ``n_frames`` that ``add_fps_into_activitynet_json`` stores). Several
files merge into one label space (labels concatenated; clashing names prefixed by their
file's stem, or folder and stem when stems repeat), and seeded class/instance fractions give the mega-scale paper's subsets.
A multi-label entry (HVU-style) has a list as its ``label``: ``{"label": ["a", "b"]}``.
Videos missing on disk are counted and named instead of silently dropped, and so are the
entries ``annotation_faults`` leaves out (unknown subset, misspelled key, unknown label) and
those whose path leads out of their video root; a file built for another ``--file_type`` is an
``AnnotationError`` that says how to rebuild it.

Built for Kinetics-700 scale: each file is parsed once per call, that is once per subset
(``main.py`` builds training and validation apart, ``check_dataset`` every subset), paths are
checked against one listing per folder (``video_paths``), frames are counted only for a jpg entry without a segment, and
the records are a ``RecordTable`` of flat arrays (no Python object per video).
"""
import contextlib
import gc
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple, Union

import numpy as np

from datasets.annotation_entries import OUTSIDE, read_file
from datasets.formats.annotation_faults import Fault, ordered_counts, summarize, wrong_frame_base
from datasets.formats.annotation_json import AnnotationError, canonical_subset, file_labels, first_ids
from datasets.records import RecordTable, VideoRecord
from datasets.video_paths import FolderListings

__all__ = ['AnnotationError', 'OUTSIDE', 'VideoList', 'VideoRecord', 'RecordTable', 'load_video_list', 'file_labels',
           'file_prefixes', 'merge_labels']


@dataclass
class VideoList:
    """The samples of one subset, their label space and what could not be used."""
    labels: List[str]
    records: Union[RecordTable, Iterable[VideoRecord]]  # any records given become a RecordTable
    missing: List[str] = field(default_factory=list)   # ids whose video is not on disk
    empty: List[str] = field(default_factory=list)     # ids with no frames
    empty_paths: List[Path] = field(default_factory=list)  # where each of ``empty`` would be on disk
    dropped: List[Fault] = field(default_factory=list)  # entries of this subset, or of none, left out
    subset: str = ''
    # file name (with its folder when names repeat) -> {subset as written: entries}, for the files without
    # an entry of ``subset``
    other_subsets: Dict[str, Dict[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.records = RecordTable.of(self.records)

    def summary(self) -> str:
        """One line: samples, classes, the missing/empty videos and the dropped entries (first few named)."""
        line = f'{len(self.records)} videos, {len(self.labels)} classes'
        for name, ids in (('missing on disk', self.missing), ('with no frames', self.empty)):
            if ids:
                line += f'; {len(ids)} {name} ({first_ids(ids)})'
        return '; '.join([line] + summarize(self.dropped))

    def subset_note(self) -> str:
        """Which subsets the files hold when one has no entry of ``subset`` ('' when all have)."""
        return '; '.join(f"{name} has no {self.subset} entry; its subsets are: "
                         + (', '.join(f'{s} ({n})' for s, n in counts.items()) or 'none')
                         for name, counts in self.other_subsets.items())


def _distinct(paths: Sequence[Path], names: List[str]) -> List[str]:
    """``names`` as they are, or ``<folder>/<name>`` (``<n>/<name>`` failing that) when they repeat."""
    if len(set(names)) == len(names):
        return names
    longer = [f'{p.parent.name}/{name}' for p, name in zip(paths, names)]
    return longer if len(set(longer)) == len(longer) else [f'{i + 1}/{name}' for i, name in enumerate(names)]


def file_prefixes(paths: Sequence[Path]) -> List[str]:
    """Names that tell the files apart: their stems, or ``<folder>/<stem>`` when stems repeat."""
    return _distinct(paths, [p.stem for p in paths])


def merge_labels(per_file: Sequence[Tuple[str, List[str]]]) -> List[List[str]]:
    """Concatenated label spaces: a name that occurs in several files gets ``<file stem>:`` in front."""
    counts: Dict[str, int] = {}
    for _, labels in per_file:
        for name in set(labels):
            counts[name] = counts.get(name, 0) + 1
    return [[f'{stem}:{name}' if counts[name] > 1 else name for name in labels]
            for stem, labels in per_file]


def _check_frame_base(path: Path, table: RecordTable, file_type: str) -> None:
    """A file whose every segment starts at another file type's first frame is an ``AnnotationError``."""
    wrong = 0 if file_type == 'jpg' else 1
    if len(table) and not (table.start != wrong).any():
        reason = wrong_frame_base([(r.video_id, r.path, r.frames) for r in table[:3]], file_type)
        if reason:
            raise AnnotationError(f'{path}: {reason}: rebuild it with --file_type {file_type} '
                                  f'(or run with the --file_type it was built for)')


def load_video_list(annotation_paths: Sequence[Path], video_paths: Sequence[Path], subset: str,
                    file_type: str = 'jpg', dataset: str = 'kinetics', whole_videos: bool = False,
                    class_fraction: float = 1.0, instance_fraction: float = 1.0,
                    seed: int = 1) -> VideoList:
    """The samples of ``subset`` ('training', 'validation', 'testing') across annotation files.

    ``video_paths`` has one root per annotation file, or one root shared by all.
    ``whole_videos`` makes ActivityNet serve untrimmed videos (inference).
    ``class_fraction`` keeps a seeded fraction of the classes (the label space shrinks);
    ``instance_fraction`` keeps a seeded fraction of each class's training videos.
    """
    subset = canonical_subset(subset)
    paths = [Path(p) for p in annotation_paths]
    roots = [Path(p) for p in video_paths]
    if len(roots) == 1:
        roots = roots * len(paths)
    if len(roots) != len(paths):
        raise AnnotationError(f'{len(paths)} annotation files but {len(roots)} video paths: '
                              'give one video path per annotation file, or one for all')
    activitynet = dataset == 'activitynet'
    parts, tables, offset, listings = [], [], 0, FolderListings()
    with _gc_paused():
        for path, root in zip(paths, roots):
            part = read_file(path, root, subset, file_type, activitynet, whole_videos, listings)
            table = part.columns.table(offset)
            part.columns = None  # the lists go as soon as the table holds their contents
            if not activitynet:
                _check_frame_base(path, table, file_type)
            empty = table.stop <= table.start
            part.empty = [table.ids[k] for k in np.flatnonzero(empty)]
            part.empty_paths = [Path(table.paths.get(int(k), table.ids[k])) for k in np.flatnonzero(empty)]
            tables.append(table.take(np.flatnonzero(~empty)) if empty.any() else table)
            parts.append(part)
            offset += len(part.own)
    merged = merge_labels([(prefix, part.own) for prefix, part in zip(file_prefixes(paths), parts)])
    labels = [name for names in merged for name in names]
    out = VideoList(labels, [], subset=subset)
    for name, part in zip(_distinct(paths, [p.name for p in paths]), parts):
        out.missing += part.missing
        out.empty += part.empty
        out.empty_paths += part.empty_paths
        out.dropped += part.dropped
        if not part.seen:
            out.other_subsets[name] = ordered_counts(part.counts)
    out.labels, out.records = _apply_fractions(labels, RecordTable.concat(tables), subset, class_fraction,
                                               instance_fraction, seed)
    return out


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No garbage collection while the records are read: they make no cycles, and at Kinetics
    scale the collector's passes over a growing heap cost more time than the reading."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _keep_classes(records: RecordTable, n_labels: int, kept: List[int]) -> RecordTable:
    """The records of the kept classes in the reduced label space (a multi-label record keeps its kept labels)."""
    lut = np.full(n_labels + 1, -1, np.int64)  # lut[-1]: unlabelled stays -1
    lut[kept] = np.arange(len(kept))
    values = lut[records.label_values]
    kept_value = values >= 0
    rows = np.repeat(np.arange(len(records)), records.label_counts())
    counts = np.bincount(rows[kept_value], minlength=len(records))
    values = values[kept_value]
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    first = values[np.minimum(offsets[:-1], max(len(values) - 1, 0))] if len(values) else np.full(len(records), -1)
    label = lut[records.label]
    label = np.where(label >= 0, label, np.where(counts > 0, first, -1))
    keep = (lut[records.label] >= 0) | (counts > 0)
    return records.with_labels(label, values, offsets).take(np.flatnonzero(keep))


def _apply_fractions(labels: List[str], records: RecordTable, subset: str,
                     class_fraction: float, instance_fraction: float, seed: int
                     ) -> Tuple[List[str], RecordTable]:
    for name, value in (('class_fraction', class_fraction), ('instance_fraction', instance_fraction)):
        if not 0 < value <= 1:
            raise AnnotationError(f'--{name} must be in (0, 1], not {value}')
    if class_fraction < 1:
        rng = random.Random(seed)
        n_keep = max(1, round(len(labels) * class_fraction))
        kept = sorted(rng.sample(range(len(labels)), n_keep))
        records = _keep_classes(records, len(labels), kept)
        labels = [labels[i] for i in kept]
    if instance_fraction < 1 and subset == 'training':
        rng = random.Random(seed + 1)
        by_class: Dict[int, List[int]] = {}
        for i, label in enumerate(records.label.tolist()):
            by_class.setdefault(label, []).append(i)
        keep = set()
        for members in by_class.values():
            keep.update(rng.sample(members, max(1, round(len(members) * instance_fraction))))
        records = records.take(sorted(keep))
    return labels, records
