"""Where a dataset's videos are on disk and how many frames each one has (no torch).

Videos live at ``<root>/<label>/<video_id>`` (a jpg frame folder), ``<root>/<label>/<video_id>.hdf5``
or ``<root>/<label>/<video_id>.<ext>`` (a video file); testing videos use the label ``test``
and multi-label videos (HVU) sit directly in the root. Video files are opened through
``video_files`` (PyAV; the one list of video extensions and the one frame count), hdf5
files through h5py.
"""
import os
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple, Union

from datasets.formats.annotation_json import FILE_TYPES
from datasets.formats import video_files
from datasets.formats.video_files import UNREADABLE, has_video_extension

PathLike = Union[str, os.PathLike]

TEST_LABEL = 'test'  # the class folder that holds testing videos, as in the original
IMAGE_TEMPLATE = 'image_{:05d}.jpg'  # the original's frame names (1-based)


def is_frame_file(name: str) -> bool:
    """True for frame file names written by generate_video_jpgs (``image_*.jpg``)."""
    return name.startswith('image_') and name.endswith('.jpg')


def count_jpg_frames(folder: PathLike, missing: Optional[int] = None) -> int:
    """Number of ``image_*.jpg`` files in a frame folder; ``missing`` if it cannot be listed (None: OSError)."""
    try:
        with os.scandir(folder) as it:
            return sum(1 for e in it if is_frame_file(e.name))
    except OSError:
        if missing is None:
            raise
        return missing


def count_hdf5_frames(path: PathLike) -> int:
    """Number of frames in an hdf5 video: length of ``video``, or of ``video_u`` (flow only)."""
    import h5py
    with h5py.File(path, 'r') as f:
        return len(f['video'] if 'video' in f else f['video_u'])


def count_frames(path: Path, file_type: str) -> int:
    """Frames of one video: jpg files in a folder, hdf5 length, or the frames a video file decodes to.

    A video file's count is ``video_files.count_frames`` (what the converters would write, and
    what the loader's index holds), not its packet count.
    """
    if file_type == 'jpg':
        return count_jpg_frames(path)
    if file_type == 'hdf5':
        return count_hdf5_frames(path)
    if file_type == 'video':
        return video_files.count_frames(path)
    raise ValueError(f'unknown file type {file_type!r}; expected one of {FILE_TYPES}')


def unreadable_errors() -> Tuple[type, ...]:
    """Exceptions that mean 'this video (folder, hdf5 or video file) is broken' rather than a bug."""
    return (KeyError, IndexError) + UNREADABLE  # KeyError: an hdf5 file without its dataset


def video_id_of(name: str, file_type: str) -> Optional[str]:
    """The video id an entry of a class folder stands for, or None if it is not a video."""
    if name.startswith('.'):
        return None
    if file_type == 'jpg':
        return name
    stem, ext = os.path.splitext(name)
    if file_type == 'hdf5':
        return stem if ext == '.hdf5' else None
    return stem if has_video_extension(name) else None


def video_entries(names: Iterable[str], file_type: str, duplicates: Optional[List[str]] = None) -> Dict[str, str]:
    """Map video id -> entry name for the entries of one folder that are videos of ``file_type``.

    The one rule for finding a video by its id: a video file needs a video extension (``a.srt``
    beside ``a.mp4`` is no video), and of two entries with one stem (``a.mp4``, ``a.webm``) the
    first by name wins, the id then appended to ``duplicates`` when given. ``names`` must already
    be of the right kind: folders for jpg, files otherwise.
    """
    found: Dict[str, str] = {}
    for name in sorted(names):
        video_id = video_id_of(name, file_type)
        if video_id is None:
            continue
        if video_id in found:
            if duplicates is not None:
                duplicates.append(video_id)
            continue
        found[video_id] = name
    return found


def list_class_folder(folder: PathLike, file_type: str,
                      duplicates: Optional[List[str]] = None) -> Dict[str, Path]:
    """Map video id -> path for the videos of one class folder ({} if it does not exist); ``video_entries``' rule."""
    folder = Path(folder)
    try:
        with os.scandir(folder) as it:
            names = [e.name for e in it if e.is_dir() == (file_type == 'jpg')]
    except (FileNotFoundError, NotADirectoryError):
        return {}
    return {video_id: folder / name for video_id, name in video_entries(names, file_type, duplicates).items()}


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
