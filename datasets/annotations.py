"""Annotation JSON files -> the list of videos a dataset serves.

Reads the original's format (``labels`` + ``database`` of ``{subset, annotations: {label,
segment}}``) and ActivityNet's official one (``taxonomy`` + ``annotations`` lists in seconds,
with the ``fps`` and ``n_frames`` that ``add_fps_into_activitynet_json`` stores). Several
files merge into one label space (labels concatenated; clashing names prefixed by their
file's stem, or folder and stem when stems repeat), and seeded class/instance fractions give the mega-scale paper's subsets.
A multi-label entry (HVU-style) has a list as its ``label``: ``{"label": ["a", "b"]}``.
Videos missing on disk are counted and named instead of silently dropped, and so are the
entries ``annotation_faults`` leaves out (unknown subset, misspelled key, unknown label); a file
built for another ``--file_type`` is an ``AnnotationError`` that says how to rebuild it.
"""
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from datasets.formats import video_layout
from datasets.formats.annotation_faults import (Fault, entry_faults, file_subset, subset_counts, summarize,
                                                wrong_frame_base)
from datasets.formats.annotation_json import (AnnotationError, canonical_subset, entry_labels,
                                              file_labels, read_annotation_json)


@dataclass
class VideoRecord:
    """One sample: a video (or an ActivityNet segment) and where its frames are."""
    video_id: str
    label: int                  # index into labels; -1 for unlabeled (test) entries
    path: Path
    frames: range               # frame indices (1-based for jpg, 0-based for hdf5/video)
    segment: Tuple[int, int]    # [first, last + 1] as written to inference results
    labels: Tuple[int, ...] = ()  # every label of a multi-label entry (``label`` is the first)

    @property
    def label_set(self) -> Tuple[int, ...]:
        """Every label of the video, whether the entry is multi-label or not (``()``: unlabelled)."""
        return self.labels or ((self.label,) if self.label >= 0 else ())


@dataclass
class VideoList:
    """The samples of one subset, their label space and what could not be used."""
    labels: List[str]
    records: List[VideoRecord]
    missing: List[str] = field(default_factory=list)   # ids whose video is not on disk
    empty: List[str] = field(default_factory=list)     # ids with no frames
    dropped: List[Fault] = field(default_factory=list)  # entries of this subset, or of none, left out
    subset: str = ''
    # file name -> {subset as written: entries}, for the files without an entry of ``subset``
    other_subsets: Dict[str, Dict[str, int]] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: samples, classes, the missing/empty videos and the dropped entries (first few named)."""
        line = f'{len(self.records)} videos, {len(self.labels)} classes'
        for name, ids in (('missing on disk', self.missing), ('with no frames', self.empty)):
            if ids:
                shown = ', '.join(ids[:5]) + (', ...' if len(ids) > 5 else '')
                line += f'; {len(ids)} {name} ({shown})'
        return '; '.join([line] + summarize(self.dropped))

    def subset_note(self) -> str:
        """Which subsets the files hold when one has no entry of ``subset`` ('' when all have)."""
        return '; '.join(f"{name} has no {self.subset} entry; its subsets are: "
                         + (', '.join(f'{s} ({n})' for s, n in counts.items()) or 'none')
                         for name, counts in self.other_subsets.items())


def file_prefixes(paths: Sequence[Path]) -> List[str]:
    """Names that tell the files apart: their stems, or ``<folder>/<stem>`` when stems repeat."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    longer = [f'{p.parent.name}/{p.stem}' for p in paths]
    return longer if len(set(longer)) == len(longer) else [f'{i + 1}/{p.stem}' for i, p in enumerate(paths)]


def merge_labels(per_file: Sequence[Tuple[str, List[str]]]) -> List[List[str]]:
    """Concatenated label spaces: a name that occurs in several files gets ``<file stem>:`` in front."""
    counts: Dict[str, int] = {}
    for _, labels in per_file:
        for name in set(labels):
            counts[name] = counts.get(name, 0) + 1
    return [[f'{stem}:{name}' if counts[name] > 1 else name for name in labels]
            for stem, labels in per_file]


def _candidates(root: Path, video_id: str, label: Optional[str], activitynet: bool,
                multilabel: bool = False) -> List[Path]:
    """Where a video may be, before the file type's suffix: the original's layouts."""
    if activitynet:
        return [root / (video_id if video_id.startswith('v_') else f'v_{video_id}')]
    if label is None:  # unlabeled test videos: conversion puts them in <root>/test/
        return [root / 'test' / video_id, root / video_id]
    if multilabel:  # multi-label videos (HVU) have no class folder; allow the first label's
        return [root / video_id, root / label / video_id]
    return [root / label / video_id]


def _resolve(base: Path, file_type: str, listing: Dict[Path, Dict[str, Path]]) -> Path:
    if file_type == 'hdf5':
        return base.with_name(base.name + '.hdf5')
    if file_type == 'video':
        return _find_video_file(base, listing) or base
    return base


def _find_video_file(base: Path, cache: Dict[Path, Dict[str, Path]]) -> Optional[Path]:
    """``<dir>/<stem>.<any extension>``, listing each folder once."""
    folder = base.parent
    if folder not in cache:
        try:
            cache[folder] = {p.stem: p for p in folder.iterdir() if p.is_file()}
        except OSError:
            cache[folder] = {}
    return cache[folder].get(base.name)


def count_jpg_frames(folder: Path) -> int:
    """Number of ``image_*.jpg`` files in a frame folder (0 if it cannot be listed)."""
    try:
        return video_layout.count_jpg_frames(folder)
    except OSError:
        return 0


def _segment_frames(entry: Dict[str, Any], file_type: str, path: Path) -> Optional[range]:
    """Frame range of an original-format entry (None: the video has no frames on record)."""
    segment = (entry.get('annotations') or {}).get('segment') if isinstance(entry.get('annotations'), dict) else None
    if segment is None:
        segment = entry.get('segment')
    if segment is not None:
        return range(int(segment[0]), int(segment[1]))
    if file_type == 'jpg':  # built before the frames existed: count them now
        return range(1, count_jpg_frames(path) + 1)
    return None


def _activitynet_records(entry: Dict[str, Any], video_id: str, path: Path, labels: Mapping[str, int],
                         file_type: str, whole_video: bool) -> List[Tuple[str, int, range]]:
    """ActivityNet: one (id, label, frames) per annotated segment, or the whole untrimmed video."""
    first = 1 if file_type == 'jpg' else 0
    n = entry.get('n_frames')
    if n is None and file_type == 'jpg':
        n = count_jpg_frames(path)
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
    data = [read_annotation_json(p) for p in paths]
    own_labels = [file_labels(p, d) for p, d in zip(paths, data)]
    merged = merge_labels(list(zip(file_prefixes(paths), own_labels)))
    labels = [name for names in merged for name in names]

    activitynet = dataset == 'activitynet'
    out = VideoList(labels, [], subset=subset)
    offset = 0
    listing: Dict[Path, Dict[str, Path]] = {}
    for path, d, root, own in zip(paths, data, roots, own_labels):
        entries = []
        known = {name: i for i, name in enumerate(own)}  # name -> index in this file's label space
        for video_id, entry in d['database'].items():
            faults = entry_faults(video_id, entry, known)
            if faults:
                if file_subset(entry) in (None, subset):
                    out.dropped += faults
            elif file_subset(entry) == subset:
                entries.append((video_id, entry))
        if not any(file_subset(entry) == subset for entry in d['database'].values()):
            out.other_subsets[path.name] = subset_counts(d['database'])
        found = [_records(video_id, entry, known, root, file_type, activitynet, whole_videos, listing, path)
                 for video_id, entry in entries]
        out.missing += [video_id for (video_id, _), items in zip(entries, found) if items is None]
        records = [item for items in found if items for item in items]
        if not activitynet:
            reason = wrong_frame_base([(r.video_id, r.path, r.frames) for r in records], file_type)
            if reason:
                raise AnnotationError(f'{path}: {reason}: rebuild it with --file_type {file_type} '
                                      f'(or run with the --file_type it was built for)')
        for r in records:
            if len(r.frames) == 0:
                out.empty.append(r.video_id)
                continue
            label = r.label + offset if r.label >= 0 else -1
            out.records.append(VideoRecord(r.video_id, label, r.path, r.frames, (r.frames.start, r.frames.stop),
                                           tuple(x + offset for x in r.labels)))
        offset += len(own)
    out.labels, out.records = _apply_fractions(labels, out.records, subset, class_fraction, instance_fraction, seed)
    return out


def _records(video_id: str, entry: Dict[str, Any], own: Mapping[str, int], root: Path, file_type: str,
             activitynet: bool, whole_videos: bool, listing: Dict[Path, Dict[str, Path]],
             path: Path) -> Optional[List[VideoRecord]]:
    """The records of one usable entry, in its file's label space (None: the video is not on disk)."""
    names, multi = entry_labels(entry)
    label_name = names[0] if names else None
    explicit = _explicit_path(entry)
    if explicit:
        vpath = Path(explicit) if Path(explicit).is_absolute() else root / explicit
        if not vpath.exists():
            return None
    else:
        options = [_resolve(c, file_type, listing)
                   for c in _candidates(root, video_id, label_name, activitynet, multi)]
        vpath = next((c for c in options if c.exists()), None)
        if vpath is None:
            return None
    if activitynet:
        try:
            items = _activitynet_records(entry, video_id, vpath, own, file_type, whole_videos)
        except (AnnotationError, KeyError, ValueError) as e:
            raise AnnotationError(f'{path}: {e}') from None
    else:
        frames = _segment_frames(entry, file_type, vpath)
        label = own[label_name] if label_name is not None else -1
        items = [(video_id, label, frames if frames is not None else range(0))]
    all_labels = tuple(own[n] for n in names) if multi else ()
    return [VideoRecord(vid, label, vpath, frames, (frames.start, frames.stop), all_labels)
            for vid, label, frames in items]


def _explicit_path(entry: Dict[str, Any]) -> Optional[str]:
    """An entry's own ``video_path`` (at the entry or in its annotations), if any."""
    for holder in (entry, entry.get('annotations')):
        if isinstance(holder, dict) and holder.get('video_path'):
            return str(holder['video_path'])
    return None


def _remapped(r: VideoRecord, remap: Dict[int, int]) -> VideoRecord:
    """The record in the reduced label space (a multi-label record keeps its kept labels)."""
    kept = tuple(remap[x] for x in r.labels if x in remap)
    label = remap[r.label] if r.label in remap else (kept[0] if kept else -1)
    return VideoRecord(r.video_id, label, r.path, r.frames, r.segment, kept)


def _apply_fractions(labels: List[str], records: List[VideoRecord], subset: str,
                     class_fraction: float, instance_fraction: float, seed: int
                     ) -> Tuple[List[str], List[VideoRecord]]:
    for name, value in (('class_fraction', class_fraction), ('instance_fraction', instance_fraction)):
        if not 0 < value <= 1:
            raise AnnotationError(f'--{name} must be in (0, 1], not {value}')
    if class_fraction < 1:
        rng = random.Random(seed)
        n_keep = max(1, round(len(labels) * class_fraction))
        kept = sorted(rng.sample(range(len(labels)), n_keep))
        remap = {old: new for new, old in enumerate(kept)}
        labels = [labels[i] for i in kept]
        records = [_remapped(r, remap) for r in records
                   if r.label in remap or any(x in remap for x in r.labels)]
    if instance_fraction < 1 and subset == 'training':
        rng = random.Random(seed + 1)
        by_class: Dict[int, List[int]] = {}
        for i, r in enumerate(records):
            by_class.setdefault(r.label, []).append(i)
        keep = set()
        for members in by_class.values():
            keep.update(rng.sample(members, max(1, round(len(members) * instance_fraction))))
        records = [r for i, r in enumerate(records) if i in keep]
    return labels, records
