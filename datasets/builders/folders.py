"""Annotation JSON for a custom dataset laid out as ROOT/<class>/<video> (``python -m util_scripts.folder_json`` runs it)."""
import argparse
import random
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from datasets.formats.annotation_build import build_annotation_file
from datasets.formats.annotation_json import FILE_TYPES, AnnotationError, Row
from datasets.formats.text_inputs import require_dir
from datasets.formats.video_layout import count_jpg_frames, list_class_folder

KINDS = {'jpg': 'jpg frame folders', 'hdf5': 'hdf5 files', 'video': 'video files'}  # videos of each --file_type


def scan_classes(root: Path, file_type: str,
                 duplicates: List[str]) -> Tuple[Dict[str, List[str]], List[str]]:
    """({class: sorted video ids}, class folders without videos) of a dataset root."""
    videos: Dict[str, List[str]] = {}
    empty: List[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith('.')):
        ids = sorted(list_class_folder(folder, file_type, duplicates))
        if ids:
            videos[folder.name] = ids
        else:
            empty.append(folder.name)
    return videos, empty


def file_type_hint(root: Path, folders: Sequence[Path], file_type: str) -> str:
    """Why ``folders`` hold no ``file_type`` video: other videos, frames, or videos in ROOT itself ('' if unknown)."""
    n, other = max((sum(len(list_class_folder(folder, other)) for folder in folders), other)
                   for other in FILE_TYPES if other != file_type)
    if n:
        return f' (they hold {n} {KINDS[other]}: use --file_type {other})'
    if any(count_jpg_frames(folder) for folder in folders):
        return f' (its folders hold image_*.jpg files: {root} looks like one class folder; give the folder above it)'
    n, other = max((len(list_class_folder(root, other)), other) for other in FILE_TYPES if other != 'jpg')
    if n:
        return f' ({n} {KINDS[other]} lie directly in it: the layout is ROOT/<class>/<video>)'
    return ''


def n_validation(n_videos: int, val_fraction: float) -> int:
    """Validation videos of a class: the rounded fraction, kept within [1, n - 1] when val_fraction > 0.

    A class with one video keeps it for training (validation alone could not teach the class),
    whatever the fraction; with two or more, each subset gets at least one.
    """
    if val_fraction <= 0 or n_videos < 2:
        return 0
    return min(max(int(n_videos * val_fraction + 0.5), 1), n_videos - 1)


def split_class(label: str, video_ids: List[str], val_fraction: float, seed: int) -> List[Row]:
    """Rows of one class; the draw depends only on the seed, the class name and its videos."""
    shuffled = sorted(video_ids)
    random.Random(f'{seed}/{label}').shuffle(shuffled)
    validation = set(shuffled[:n_validation(len(shuffled), val_fraction)])
    return [(video_id, 'validation' if video_id in validation else 'training', label)
            for video_id in sorted(video_ids)]


def build(args: argparse.Namespace) -> None:
    """Split every class folder of the root; write the JSON."""
    if not 0 <= args.val_fraction < 1:
        raise AnnotationError(f'--val_fraction must be in [0, 1), got {args.val_fraction}')
    duplicates: List[str] = []
    root = require_dir(args.root, 'dataset folder')
    videos, empty = scan_classes(root, args.file_type, duplicates)
    if not videos:
        hint = file_type_hint(root, [root / name for name in empty], args.file_type)
        raise AnnotationError(f'no class folder with {KINDS[args.file_type]} in {args.root}{hint}')
    if empty:
        hint = file_type_hint(root, [root / name for name in empty], args.file_type)
        print(f'note: class folders without {KINDS[args.file_type]} left out: {", ".join(empty)}{hint}')
    single = [label for label, ids in videos.items() if len(ids) == 1]
    if single and args.val_fraction > 0:
        print(f'note: classes with one video (training only): {", ".join(single)}')
    rows = [row for label, ids in videos.items()
            for row in split_class(label, ids, args.val_fraction, args.seed)]
    build_annotation_file(args.dst_json, sorted(videos), rows, args.root, args.file_type,
                          duplicates=duplicates)
