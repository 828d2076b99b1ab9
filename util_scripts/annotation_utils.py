"""Shared pieces of the annotation JSON builders (``*_json.py``) and of the dataset loaders.

The JSON format is the original 3D-ResNets-PyTorch one::

    {"labels": [class names in index order],
     "database": {"<video_id>": {"subset": "training" | "validation" | "testing",
                                 "annotations": {"label": "<class>", "segment": [start, end]}}}}

A multi-label entry (HVU) has a list of classes as its ``label``; its video is directly in
the root (``<root>/<video_id>...``), not in a class folder.

``segment`` is ``[1, n + 1]`` for jpg frame folders (``image_00001.jpg`` is frame 1) and
``[0, n]`` for hdf5 files and video files. Testing entries carry no label. An entry whose
video is not on disk is kept without a segment, so loaders skip it, and is reported.

Videos live at ``<root>/<label>/<video_id>`` (jpg), ``<root>/<label>/<video_id>.hdf5`` (hdf5)
or ``<root>/<label>/<video_id>.<ext>`` (video); testing entries use the label ``test``.
"""
import collections
import csv
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union

from datasets.formats.atomic import atomic_write_json
from datasets.formats.video_files import (UNREADABLE, VIDEO_EXTENSIONS, probe_video,  # noqa: F401
                                          video_fps)

PathLike = Union[str, os.PathLike]

FILE_TYPES = ('jpg', 'hdf5', 'video')
SUBSETS = ('training', 'validation', 'testing')
TEST_LABEL = 'test'  # the class folder that holds testing videos, as in the original
PREVIEW = 5  # ids shown in a report line

# (video_id, subset, label or None for testing; a list of labels for multi-label data)
Row = Tuple[str, str, Union[None, str, List[str]]]


class AnnotationError(ValueError):
    """A user mistake (missing or malformed input); its message is one line naming the file.

    The one class for the builders here and for ``datasets`` (which re-exports it).
    """


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


# ----------------------------------------------------------------------------- frames on disk

def is_frame_file(name: str) -> bool:
    """True for frame file names written by generate_video_jpgs (``image_*.jpg``)."""
    return name.startswith('image_') and name.endswith('.jpg')


def count_jpg_frames(folder: PathLike) -> int:
    """Number of ``image_*.jpg`` files in a frame folder."""
    with os.scandir(folder) as it:
        return sum(1 for e in it if is_frame_file(e.name))


def count_hdf5_frames(path: PathLike) -> int:
    """Number of frames in an hdf5 video: length of ``video``, or of ``video_u`` (flow only)."""
    import h5py
    with h5py.File(path, 'r') as f:
        return len(f['video'] if 'video' in f else f['video_u'])


def count_frames(path: Path, file_type: str) -> int:
    """Frames of one video: jpg files in a folder, hdf5 length, or video packets."""
    if file_type == 'jpg':
        return count_jpg_frames(path)
    if file_type == 'hdf5':
        return count_hdf5_frames(path)
    if file_type == 'video':
        return probe_video(path)[0]
    raise ValueError(f'unknown file type {file_type!r}; expected one of {FILE_TYPES}')


def segment_for(n_frames: int, file_type: str) -> List[int]:
    """Half-open frame range: ``[1, n+1]`` for jpg folders, ``[0, n]`` for hdf5 and video."""
    return [1, n_frames + 1] if file_type == 'jpg' else [0, n_frames]


def unreadable_errors() -> Tuple[type, ...]:
    """Exceptions that mean 'this video (folder, hdf5 or video file) is broken' rather than a bug."""
    return (KeyError, IndexError) + UNREADABLE  # KeyError: an hdf5 file without its dataset


# ----------------------------------------------------------------------------- finding videos

def video_id_of(name: str, file_type: str) -> Optional[str]:
    """The video id an entry of a class folder stands for, or None if it is not a video."""
    if name.startswith('.'):
        return None
    if file_type == 'jpg':
        return name
    stem, ext = os.path.splitext(name)
    if file_type == 'hdf5':
        return stem if ext == '.hdf5' else None
    return stem if ext.lower() in VIDEO_EXTENSIONS else None


def list_class_folder(folder: PathLike, file_type: str,
                      duplicates: Optional[List[str]] = None) -> Dict[str, Path]:
    """Map video id -> path for the videos of one class folder ({} if it does not exist).

    Two files with one stem (``a.mp4``, ``a.webm``): the first by name wins and the id is
    appended to ``duplicates`` when given.
    """
    folder = Path(folder)
    try:
        with os.scandir(folder) as it:
            entries = sorted((e.name, e.is_dir()) for e in it)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    found: Dict[str, Path] = {}
    for name, is_dir in entries:
        if is_dir != (file_type == 'jpg'):
            continue
        video_id = video_id_of(name, file_type)
        if video_id is None:
            continue
        if video_id in found:
            if duplicates is not None:
                duplicates.append(video_id)
            continue
        found[video_id] = folder / name
    return found


def video_path_for(root: PathLike, label: Optional[str], video_id: str, file_type: str,
                   listings: Optional[Dict[Path, Dict[str, Path]]] = None) -> Optional[Path]:
    """Where a video is on disk (None if absent); label None means the ``test`` folder.

    With ``listings`` each class folder is listed once and reused; without it jpg and hdf5
    need one stat and video one listing of the class folder.
    """
    folder = Path(root) / (TEST_LABEL if label is None else label)
    if listings is not None:
        if folder not in listings:
            listings[folder] = list_class_folder(folder, file_type)
        return listings[folder].get(video_id)
    if file_type == 'jpg':
        path = folder / video_id
        return path if path.is_dir() else None
    if file_type == 'hdf5':
        path = folder / f'{video_id}.hdf5'
        return path if path.is_file() else None
    return list_class_folder(folder, file_type).get(video_id)


# ----------------------------------------------------------------------------- entries

def make_entry(subset: str, label: Union[None, str, List[str]]) -> Dict[str, Any]:
    """One database entry without a segment; testing entries (label None) get no label."""
    return {'subset': subset, 'annotations': {} if label is None else {'label': label}}


def build_database(rows: Iterable[Row]) -> Tuple[Dict[str, Dict[str, Any]], List[str]]:
    """Database from (video_id, subset, label) rows and the ids seen again.

    As in the original, a later row replaces the entry of an earlier one with the same id
    (which keeps its place in the order).
    """
    database: Dict[str, Dict[str, Any]] = {}
    duplicates: List[str] = []
    for video_id, subset, label in rows:
        if video_id in database:
            duplicates.append(video_id)
        database[video_id] = make_entry(subset, label)
    return database, duplicates


def progress(items: Sequence[Any], desc: str) -> Iterable[Any]:
    """tqdm on stderr when it is a terminal, the items unchanged otherwise."""
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, desc=desc, leave=False, disable=None, file=sys.stderr)


def add_segments(database: Dict[str, Dict[str, Any]], video_root: PathLike, file_type: str,
                 cache: Optional[DiskCache] = None, desc: str = 'counting frames') -> Findings:
    """Give every entry found on disk its segment; report missing, empty and broken videos."""
    cache = cache if cache is not None else DiskCache()
    broken = unreadable_errors()
    findings = Findings()
    for video_id, entry in progress(list(database.items()), desc):
        annotations = entry['annotations']
        label = annotations.get('label')
        folder = '' if isinstance(label, list) else label  # multi-label videos sit in the root
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
        annotations['segment'] = segment_for(n_frames, file_type)
    return findings


# ----------------------------------------------------------------------------- reading inputs

def require_file(path: PathLike, what: str = 'file') -> Path:
    """The path, or AnnotationError if it is not an existing file."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f'{what} not found: {path}')
    return path


def require_dir(path: PathLike, what: str = 'folder') -> Path:
    """The path, or AnnotationError if it is not an existing directory."""
    path = Path(path)
    if not path.is_dir():
        raise AnnotationError(f'{what} not found: {path}')
    return path


def read_lines(path: PathLike) -> List[str]:
    """Non-blank, stripped lines of a UTF-8 text file (BOM and CRLF tolerated)."""
    path = require_file(path)
    try:
        with open(path, encoding='utf-8-sig') as f:
            return [line.strip() for line in f if line.strip()]
    except UnicodeDecodeError:
        raise AnnotationError(f'{path}: not a UTF-8 text file') from None
    except OSError as e:
        raise AnnotationError(f'{path}: cannot read ({e.strerror})') from None


def read_annotation_json(path: PathLike) -> Dict[str, Any]:
    """An annotation file's JSON, or a one-line ``AnnotationError`` naming it (no ``database``: not one)."""
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except FileNotFoundError:
        raise AnnotationError(f'{path}: annotation file not found') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise AnnotationError(f'{path}: not valid JSON ({e})') from None
    except OSError as e:
        raise AnnotationError(f'{path}: cannot read ({e.strerror})') from None
    if not isinstance(data, dict) or not isinstance(data.get('database'), dict):
        raise AnnotationError(f"{path}: no 'database' object: not an annotation file")
    return data


def read_csv_rows(path: PathLike) -> List[List[str]]:
    """Non-blank rows of a header-less CSV file, cells stripped."""
    path = require_file(path)
    try:
        with open(path, encoding='utf-8-sig', newline='') as f:
            return [[cell.strip() for cell in row] for row in csv.reader(f)
                    if any(cell.strip() for cell in row)]
    except UnicodeDecodeError:
        raise AnnotationError(f'{path}: not a UTF-8 text file') from None
    except csv.Error as e:
        raise AnnotationError(f'{path}: unreadable CSV ({e})') from None
    except OSError as e:
        raise AnnotationError(f'{path}: cannot read ({e.strerror})') from None


def read_csv_dicts(path: PathLike, required: Sequence[str]) -> List[Dict[str, str]]:
    """Rows of a CSV file with a header as dicts; AnnotationError if a required column lacks."""
    rows = read_csv_rows(path)
    if not rows:
        raise AnnotationError(f'{path}: empty CSV file')
    header = rows[0]
    lacking = [name for name in required if name not in header]
    if lacking:
        raise AnnotationError(f'{path}: bad header: no column {", ".join(lacking)} '
                              f'(found: {",".join(header)})')
    return [dict(zip(header, row)) for row in rows[1:]]


# ----------------------------------------------------------------------------- writing, report

def write_json_atomic(path: PathLike, data: Any) -> Path:
    """Write JSON through a temp file beside ``path`` and a rename; creates the folder."""
    try:
        return atomic_write_json(path, data)
    except OSError as e:
        raise AnnotationError(f'cannot write {path}: {e.strerror or e}') from None


def preview(ids: Sequence[str], k: int = PREVIEW) -> str:
    """``count (id1, id2, ...)`` or ``0``."""
    if not ids:
        return '0'
    shown = ', '.join(ids[:k]) + (', ...' if len(ids) > k else '')
    return f'{len(ids)} ({shown})'


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
        label = entry['annotations'].get('label')
        for name in (label if isinstance(label, list) else [] if label is None else [label]):
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


def print_error(error: Exception) -> int:
    """Print a one-line error to stderr; return the exit code 2."""
    print(f'error: {error}', file=sys.stderr)
    return 2


def write_annotation_json(dst: PathLike, labels: List[str], rows: Iterable[Row],
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
    path = write_json_atomic(dst, data)
    print(format_report(f'{path}:', data, findings))
    return findings
