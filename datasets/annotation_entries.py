"""One annotation file's entries of a subset -> record columns, each video located on disk.

``read_file`` walks the entries as ``annotation_stream`` parses them: the faults of each
(``annotation_faults``) go into the file's ``dropped``, and a usable entry of the subset is
located under its video root (its own ``video_path``, confined to the root, or the original's
layouts: ``<label>/<id>``, ``test/<id>``, ``v_<id>``) against one listing per folder, and
added to the columns, or to ``missing``. Frames are counted only for a jpg entry without a
segment. ``annotations.load_video_list`` merges the files.
"""
import collections
import math
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple

import numpy as np

from common.errors import read_text
from datasets.formats import video_layout
from datasets.formats.annotation_faults import Fault, entry_faults, file_subset, subset_key
from datasets.formats.annotation_json import AnnotationError, entry_labels, file_labels
from datasets.formats.annotation_stream import RepeatedId, read_entries, whole_entries
from datasets.records import RecordTable
from datasets.video_paths import FolderListings, confine

OUTSIDE = 'video_path outside the video root'  # the fault of an entry whose path leads out of its root


def _explicit_path(entry: Dict[str, Any]) -> Optional[str]:
    """An entry's own ``video_path`` (at the entry or in its annotations), if any."""
    for holder in (entry, entry.get('annotations')):
        if isinstance(holder, dict) and holder.get('video_path'):
            return str(holder['video_path'])
    return None



def _relative_candidates(video_id: str, label: Optional[str], activitynet: bool, multilabel: bool) -> List[str]:
    """Where a video may be under its root, before the file type's suffix: the original's layouts."""
    if activitynet:
        return [video_id if video_id.startswith('v_') else f'v_{video_id}']
    if label is None:  # unlabeled test videos: conversion puts them in <root>/test/
        return [f'test/{video_id}', video_id]
    if multilabel:  # multi-label videos (HVU) have no class folder; allow the first label's
        return [video_id, f'{label}/{video_id}']
    return [f'{label}/{video_id}']


def _locate(root: str, video_id: str, entry: Dict[str, Any], label: Optional[str], multilabel: bool,
            file_type: str, activitynet: bool, listings: FolderListings) -> Tuple[Optional[str], Optional[str]]:
    """(path, None) when the video is on disk, (None, None) when not, (None, what) when ``what`` leads out of ``root``."""
    given = _explicit_path(entry)
    if given is not None:
        path = confine(root, given)
        if path is None:
            return None, given
        return (path if listings.exists(path) else None), None
    for relative in _relative_candidates(video_id, label, activitynet, multilabel):
        base = confine(root, relative)
        if base is None:
            return None, relative
        found = listings.resolve(base, file_type)
        if found is not None:
            return found, None
    return None, None


def _segment(entry: Dict[str, Any]) -> Optional[Tuple[int, int]]:
    """An original-format entry's ``segment`` (in its annotations, or at the entry), if any."""
    annotations = entry.get('annotations')
    segment = annotations.get('segment') if isinstance(annotations, dict) else None
    if segment is None:
        segment = entry.get('segment')
    return None if segment is None else (int(segment[0]), int(segment[1]))


def _activitynet_records(entry: Dict[str, Any], video_id: str, path: Path, labels: Mapping[str, int],
                         file_type: str, whole_video: bool) -> List[Tuple[str, int, range]]:
    """ActivityNet: one (id, label, frames) per annotated segment, or the whole untrimmed video."""
    first = 1 if file_type == 'jpg' else 0
    n = entry.get('n_frames')
    if n is None and file_type == 'jpg':
        n = video_layout.count_jpg_frames(path, missing=0)
    if n is None:
        raise AnnotationError(f'video {video_id} has no n_frames: run util_scripts.add_fps_into_activitynet_json first')
    if whole_video or not entry.get('annotations'):
        label = labels[entry['annotations'][0]['label']] if entry.get('annotations') else -1
        return [(video_id, label, range(first, first + int(n)))]
    fps = entry.get('fps')
    if not fps:
        raise AnnotationError(f'video {video_id} has no fps: run util_scripts.add_fps_into_activitynet_json first')
    out = []
    for ann in entry['annotations']:
        t0, t1 = ann['segment']
        begin = first + int(math.floor(t0 * fps))
        end = min(first + int(math.floor(t1 * fps)), first + int(n))
        out.append((video_id, labels[ann['label']], range(begin, end)))
    return out


class Columns:
    """The records of one file as they are found, column by column (in its own label space)."""

    def __init__(self) -> None:
        self.ids: List[str] = []
        self.paths: List[str] = []
        self.label: List[int] = []
        self.start: List[int] = []
        self.stop: List[int] = []
        self.labels: List[Tuple[int, ...]] = []

    def add(self, video_id: str, path: str, label: int, frames: range, labels: Tuple[int, ...]) -> None:
        """One record."""
        self.ids.append(video_id)
        self.paths.append(path)
        self.label.append(label)
        self.start.append(frames.start)
        self.stop.append(frames.stop)
        self.labels.append(labels)

    def table(self, offset: int) -> RecordTable:
        """The records, their labels moved by ``offset`` (the file's place in the merged label space)."""
        multi = any(self.labels)
        table = RecordTable.from_columns(self.ids, self.paths, self.label, self.start, self.stop,
                                         self.labels if multi else None)
        if offset:
            label = np.where(table.label >= 0, table.label + offset, -1)
            table = table.with_labels(label, table.label_values + offset, table.label_offsets)
        return table


class FileRecords:
    """What one annotation file gives: its labels, its records as columns, and what it could not use."""

    def __init__(self, path: Path, own: List[str]) -> None:
        self.path, self.own = path, own
        self.known = {name: k for k, name in enumerate(own)}  # name -> index in this file's label space
        self.columns = Columns()
        self.missing: List[str] = []
        self.empty: List[str] = []
        self.empty_paths: List[Path] = []
        self.dropped: List[Fault] = []
        self.counts: Dict[str, int] = collections.Counter()
        self.seen = False  # whether an entry of the subset occurs, usable or not

    def add(self, video_id: str, entry: Dict[str, Any], root: str, file_type: str, activitynet: bool,
            whole_videos: bool, listings: FolderListings) -> None:
        """The records of one usable entry of the subset (none when its video is missing or outside ``root``)."""
        names, multi = entry_labels(entry)
        label_name = names[0] if names else None
        found, outside = _locate(root, video_id, entry, label_name, multi, file_type, activitynet, listings)
        if outside is not None:
            self.dropped.append(Fault(video_id, str(entry.get('subset')), OUTSIDE, repr(outside)))
            return
        if found is None:
            self.missing.append(video_id)
            return
        own = self.known
        all_labels = tuple(own[n] for n in names) if multi else ()
        if activitynet:
            try:
                items = _activitynet_records(entry, video_id, Path(found), own, file_type, whole_videos)
            except (AnnotationError, KeyError, ValueError) as e:
                raise AnnotationError(f'{self.path}: {e}') from None
        else:
            segment = _segment(entry)
            if segment is not None:
                frames = range(*segment)
            elif file_type == 'jpg':  # built before the frames existed: count them now
                frames = range(1, video_layout.count_jpg_frames(found, missing=0) + 1)
            else:
                frames = range(0)
            items = [(video_id, own[label_name] if label_name is not None else -1, frames)]
        for vid, label, frames in items:
            self.columns.add(vid, found, label, frames, all_labels)


def read_file(path: Path, root: Path, subset: str, file_type: str, activitynet: bool, whole_videos: bool,
              listings: FolderListings) -> FileRecords:
    """One annotation file's records of ``subset``, entry by entry (parsed whole when an id repeats)."""
    text = read_text(path, AnnotationError, 'annotation file')
    try:
        return _read(path, *read_entries(path, text), root, subset, file_type, activitynet, whole_videos, listings)
    except RepeatedId:  # parsed again from the text in hand, not read again
        return _read(path, *whole_entries(path, text), root, subset, file_type, activitynet, whole_videos, listings)


def _read(path: Path, header: Dict[str, Any], entries: Iterable[Tuple[str, Any]], root: Path, subset: str,
          file_type: str, activitynet: bool, whole_videos: bool, listings: FolderListings) -> FileRecords:
    part = FileRecords(path, file_labels(path, header))
    root_text, known, counts = str(root), part.known, part.counts
    for video_id, entry in entries:
        counts[subset_key(entry)] += 1
        entry_subset = file_subset(entry)
        part.seen = part.seen or entry_subset == subset
        if entry_subset not in (None, subset):  # another known subset's entry: its faults are not this one's
            continue
        faults = entry_faults(video_id, entry, known)
        if faults:
            part.dropped += faults
        elif entry_subset == subset:
            part.add(video_id, entry, root_text, file_type, activitynet, whole_videos, listings)
    return part
