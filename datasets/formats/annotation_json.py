"""The annotation JSON format: reading, the subsets, each entry's labels, building and writing.

The format is the original 3D-ResNets-PyTorch one::

    {"labels": [class names in index order],
     "database": {"<video_id>": {"subset": "training" | "validation" | "testing",
                                 "annotations": {"label": "<class>", "segment": [start, end]}}}}

A multi-label entry (HVU) has a list of classes as its ``label``. ActivityNet's official file
has a ``taxonomy`` instead of ``labels`` and a list of segments as ``annotations``; the first
segment's label names the video. ``segment`` is ``[1, n + 1]`` for jpg frame folders
(``image_00001.jpg`` is frame 1) and ``[0, n]`` for hdf5 files and video files. Testing
entries carry no label. Standard library only.
"""
import json
import os
from pathlib import Path
from typing import Any, Dict, Iterable, List, Sequence, Tuple, Union

from common.atomic import atomic_write_json
from common.errors import UserError, read_text

PathLike = Union[str, os.PathLike]

FILE_TYPES = ('jpg', 'hdf5', 'video')
SUBSETS = ('training', 'validation', 'testing')
SUBSET_ALIASES = {'training': 'training', 'train': 'training',
                  'validation': 'validation', 'val': 'validation',
                  'testing': 'testing', 'test': 'testing'}

SHOWN = 5  # ids named in a summary or a report line

# (video_id, subset, label or None for testing; a list of labels for multi-label data)
Row = Tuple[str, str, Union[None, str, List[str]]]


class AnnotationError(UserError):
    """A user mistake (missing or malformed input); its message is one line naming the file.

    The one class for the annotation builders and for ``datasets`` (which re-exports it).
    """


def canonical_subset(subset: str) -> str:
    """The annotation subset name for ``train``/``val``/``test`` or a full name; others unchanged."""
    return SUBSET_ALIASES.get(subset, subset)


def entry_labels(entry: Any) -> Tuple[List[str], bool]:
    """An entry's label names (``[]``: unlabelled) and whether it is multi-label (a list, HVU-style)."""
    annotations = entry.get('annotations') if isinstance(entry, dict) else None
    if isinstance(annotations, list):  # ActivityNet: the first segment's label names the video
        annotations = annotations[0] if annotations else None
    if not isinstance(annotations, dict):
        return [], False
    label = annotations.get('label')
    if isinstance(label, list):
        return [str(x) for x in label], True
    return ([] if label is None else [str(label)]), False


def taxonomy_leaves(taxonomy: List[Dict[str, Any]]) -> List[str]:
    """Leaf classes of ActivityNet's taxonomy (nodes no other node names as parent), in order."""
    parents = {node.get('parentId') for node in taxonomy}
    return [str(node['nodeName']) for node in taxonomy
            if 'nodeName' in node and node.get('nodeId') not in parents]


def file_labels(path: PathLike, data: Dict[str, Any]) -> List[str]:
    """The label list of one annotation file: its ``labels``, or the leaves of its ``taxonomy``."""
    if isinstance(data.get('labels'), list):
        return [str(x) for x in data['labels']]
    taxonomy = data.get('taxonomy')
    if isinstance(taxonomy, list) and all(isinstance(node, dict) for node in taxonomy):
        return taxonomy_leaves(taxonomy)
    raise AnnotationError(f"{path}: no 'labels' list (nor an ActivityNet 'taxonomy')")


def read_annotation_json(path: PathLike) -> Dict[str, Any]:
    """An annotation file's JSON, or a one-line ``AnnotationError`` naming it (no ``database``: not one)."""
    return parse_annotation_json(path, read_text(path, AnnotationError, 'annotation file'))


def parse_annotation_json(path: PathLike, text: str) -> Dict[str, Any]:
    """``read_annotation_json`` of the text of ``path``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise AnnotationError(f'{path}: not valid JSON ({e})') from None
    if not isinstance(data, dict) or not isinstance(data.get('database'), dict):
        raise AnnotationError(f"{path}: no 'database' object: not an annotation file")
    return data


def write_annotation_json(path: PathLike, data: Any) -> Path:
    """Write JSON through a temp file beside ``path`` and a rename; creates the folder."""
    try:
        return atomic_write_json(path, data)
    except OSError as e:
        raise AnnotationError(f'cannot write {path}: {e.strerror or e}') from None


def first_ids(ids: Sequence[str], k: int = SHOWN) -> str:
    """The first ``k`` of ``ids``, comma-separated, with ``, ...`` when there are more."""
    return ', '.join(ids[:k]) + (', ...' if len(ids) > k else '')


def segment_for(n_frames: int, file_type: str) -> List[int]:
    """Half-open frame range: ``[1, n+1]`` for jpg folders, ``[0, n]`` for hdf5 and video."""
    return [1, n_frames + 1] if file_type == 'jpg' else [0, n_frames]


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
