"""Feature files of inference (``inference.py --features``): per video, every clip's pooled features, their
mean and the clip segments, as an HDF5 file or a folder of .npy files, written atomically (numpy, no torch)."""
from pathlib import Path
from typing import Any, Dict, Iterable, List, Tuple

import numpy as np

from common.atomic import atomic_write, atomic_write_bytes
from common.errors import UserError
from datasets.formats.hdf5_image import hdf5_image
from evaluation.clip_scores import ClipScores, canonical_clips


def _feature_arrays(features: ClipScores) -> Dict[str, Tuple[Any, Any, Any]]:
    arrays = {}
    for name, clips in features.items():
        clips = canonical_clips(clips)
        stacked = np.stack([f.numpy() for _, f in clips])
        arrays[name] = (stacked, stacked.mean(0), np.array([list(s) for s, _ in clips]))
    return arrays


def _key_parts(target: Path, name: str) -> List[str]:
    parts = name.split('/')
    if any(part in ('', '.', '..') for part in parts):
        raise UserError(f'{target}: the video key {name!r} is not a relative path inside it')
    return parts


def feature_files(target: Path, names: Iterable[str]) -> Dict[str, Tuple[Path, Path]]:
    """Per key, its (clips, video) .npy paths in the folder ``target`` ('x/a.mp4' in the subfolder x).

    UserError for a key that would leave the folder or whose files another key's would overwrite.
    """
    out: Dict[str, Tuple[Path, Path]] = {}
    owner: Dict[Path, str] = {}
    for name in names:
        *folders, stem = _key_parts(target, name)
        out[name] = (target.joinpath(*folders, f'{stem}_clips.npy'), target.joinpath(*folders, f'{stem}.npy'))
        for path in out[name]:
            if path in owner:
                raise UserError(f'{path}: the features of {owner[path]!r} and {name!r} would share this file')
            owner[path] = name
    return out


def save_features(target: Path, features: ClipScores) -> Path:
    """Per video: every clip's features, their mean and the clip segments (.hdf5 file or .npy folder).

    Keys with '/' become HDF5 groups or subfolders. Every file is written atomically; the
    .hdf5 file is built in memory first, so a full disk ends in a ``WriteError``, never in HDF5.
    """
    arrays = _feature_arrays(features)
    if target.suffix not in ('.hdf5', '.h5'):
        for name, (clips_path, video_path) in feature_files(target, arrays).items():
            clips, video, _ = arrays[name]
            atomic_write(clips_path, lambda f, a=clips: np.save(f, a))
            atomic_write(video_path, lambda f, a=video: np.save(f, a))
        return target

    def build(h5: Any) -> None:
        for name, (clips, video, segments) in arrays.items():
            _key_parts(target, name)
            if name in h5:
                raise UserError(f'{target}: the video keys clash at {name!r}')
            group = h5.create_group(name)
            group['clips'], group['video'], group['segments'] = clips, video, segments
    return atomic_write_bytes(target, hdf5_image(build))
