"""The videos of a source tree, what is ignored in it (counted by extension) and its layout mistakes.

A video is a file with one of ``video_files.VIDEO_EXTENSIONS`` (the one list the annotation
builders use too). Class layouts read ``SRC/<class>/<video>``, the flat one (activitynet)
``SRC/<video>``. Everything else is ignored and counted: other files by extension, hidden
files, subfolders, and videos lying directly in SRC beside class folders. A tree with nothing
to convert is a ``UserError`` that says why (videos directly in SRC, class folders in a flat
layout, or no video at all).
"""
import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Counter, List, Tuple

from common.errors import UserError
from datasets.formats.frame_table_file import SUFFIX as TABLE_SUFFIX
from datasets.formats.video_files import has_video_extension

FLAT_DATASETS = ('activitynet',)
SHOWN = 10  # class folders named in a summary line
LOOSE = 'video directly in SRC'  # a video beside the class folders
PLURALS = {'hidden file': 'hidden files', 'subfolder': 'subfolders', LOOSE: 'videos directly in SRC',
           'file without extension': 'files without extension'}  # extensions stay as they are


@dataclass(frozen=True)
class Video:
    """One source file and the output path it converts to."""
    src: Path
    dst: Path


@dataclass
class Sources:
    """The videos of a tree, the ignored entries by kind and the class folders without videos."""
    videos: List[Video] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=collections.Counter)
    empty_classes: List[str] = field(default_factory=list)

    def ignored_line(self) -> str:
        """``ignored: 3 .txt, 1 .json, 2 subfolders`` ('' when nothing was ignored)."""
        parts = [f'{n} {PLURALS.get(kind, kind) if n > 1 else kind}'
                 for kind, n in sorted(self.ignored.items(), key=lambda kv: (-kv[1], kv[0]))]
        return 'ignored: ' + ', '.join(parts) if parts else ''

    def empty_line(self) -> str:
        """``class folders without videos: a, b`` ('' when every class folder has one)."""
        names = self.empty_classes
        if not names:
            return ''
        more = f' and {len(names) - SHOWN} more' if len(names) > SHOWN else ''
        return f"class folders without videos: {', '.join(names[:SHOWN])}{more}"


def _kind(path: Path) -> str:
    """What an ignored entry is, as the summary counts it."""
    if path.name.startswith('.'):
        return 'hidden file'
    if path.is_dir():
        return 'subfolder'
    return path.suffix.lower() or 'file without extension'


def _split(directory: Path) -> Tuple[List[Path], List[Path], List[Path]]:
    """(videos, subfolders, other entries) of a folder, sorted by name."""
    videos, folders, others = [], [], []
    for path in sorted(directory.iterdir()):
        if path.name.startswith('.'):
            others.append(path)
        elif path.is_dir():
            folders.append(path)
        elif path.is_file() and has_video_extension(path.name):
            videos.append(path)
        elif path.name.endswith(TABLE_SUFFIX) and has_video_extension(path.name[:-len(TABLE_SUFFIX)]):
            continue  # a video's stored frame table (frame_table_file) belongs to the video
        else:
            others.append(path)
    return videos, folders, others


def find_sources(src_root: Path, dst_root: Path, dataset: str, suffix: str = '') -> Sources:
    """The videos of a dataset layout with their output paths, and everything ignored."""
    found = Sources()
    videos, folders, others = _split(src_root)
    if dataset in FLAT_DATASETS:
        found.videos = [Video(f, dst_root / (f.stem + suffix)) for f in videos]
        found.ignored.update(_kind(p) for p in folders + others)
        return found
    found.ignored.update(_kind(p) for p in others)
    for folder in folders:
        inner, subfolders, rest = _split(folder)
        found.videos += [Video(f, dst_root / folder.name / (f.stem + suffix)) for f in inner]
        found.ignored.update(_kind(p) for p in subfolders + rest)
        if not inner:
            found.empty_classes.append(folder.name)
    if videos:
        found.ignored[LOOSE] += len(videos)
    return found


def require_sources(found: Sources, src_root: Path, dataset: str) -> None:
    """A tree with nothing to convert is a UserError saying why."""
    if found.videos:
        return
    loose = found.ignored.get(LOOSE, 0)
    if loose:
        raise UserError(f'{src_root} holds {loose} videos directly but no class folder with videos: '
                        f'{dataset} reads SRC/<class>/<video> (put them in class folders, '
                        f'or use the dataset activitynet for a flat folder)')
    if dataset in FLAT_DATASETS and found.ignored.get('subfolder'):
        in_folders = sum(len(_split(p)[0]) for p in sorted(src_root.iterdir())
                         if p.is_dir() and not p.name.startswith('.'))
        if in_folders:
            raise UserError(f'{src_root} holds no video directly but {in_folders} in its subfolders: '
                            f'{dataset} reads SRC/<video>; use a class-folder dataset (kinetics) '
                            f'for SRC/<class>/<video>')
    details = [line for line in (found.ignored_line(), found.empty_line()) if line]
    raise UserError(f'no video file to convert in {src_root}'
                    + (f" ({'; '.join(details)})" if details else ' (it is empty)'))
