"""Tiny synthetic videos in every storage format, for the data tests."""
import io
import json
from pathlib import Path
from typing import Dict, List, Sequence

import h5py
import numpy as np
from PIL import Image

from conversion.writers import encode_video


def moving_frames(n: int, h: int = 48, w: int = 64, seed: int = 0) -> List[np.ndarray]:
    """``n`` smooth H x W x 3 uint8 frames with content that moves over time."""
    y, x = np.mgrid[0:h, 0:w]
    out = []
    for t in range(n):
        r = (np.sin((x + 3 * t + seed) / 6.0) * 100 + 128)
        g = (np.cos((y - 2 * t) / 5.0) * 100 + 128)
        b = np.full_like(r, (40 + 10 * t + 30 * seed) % 256)
        out.append(np.stack([r, g, b], -1).astype(np.uint8))
    return out


def jpeg_bytes(frame: np.ndarray, mode: str = 'RGB', quality: int = 95) -> bytes:
    """A frame encoded as JPEG (``mode`` 'L' or 'CMYK' for the odd files real datasets hold)."""
    buf = io.BytesIO()
    Image.fromarray(frame).convert(mode).save(buf, 'JPEG', quality=quality)
    return buf.getvalue()


def write_jpg_folder(folder: Path, frames: Sequence[np.ndarray]) -> Path:
    """``image_00001.jpg`` ... as the conversion scripts write them."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        (folder / f'image_{i + 1:05d}.jpg').write_bytes(jpeg_bytes(f))
    return folder


def write_hdf5(path: Path, frames: Sequence[np.ndarray], names: Sequence[str] = ('video',)) -> Path:
    """The original's hdf5 layout: one vlen uint8 dataset of JPEG bytes per name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, 'w') as f:
        for k, name in enumerate(names):
            ds = f.create_dataset(name, (len(frames),), dtype=h5py.vlen_dtype(np.dtype('uint8')))
            for i, frame in enumerate(frames):
                data = jpeg_bytes(frame) if len(names) == 1 else jpeg_bytes(frame[..., k], 'L')
                ds[i] = np.frombuffer(data, dtype=np.uint8)
    return path


def write_video(path: Path, frames: Sequence[np.ndarray], codec: str = 'libx264', gop: int = 4,
                rate: int = 25) -> Path:
    """An encoded video with a keyframe every ``gop`` frames (high quality)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if codec == 'libx264':
        options = {'g': str(gop), 'keyint_min': str(gop), 'sc_threshold': '0', 'bf': '0', 'crf': '4'}
        encode_video(path, frames, codec, rate, options)
    else:
        encode_video(path, frames, codec, rate, {'g': str(gop)}, bit_rate=4_000_000)
    return path


def write_annotation(path: Path, labels: List[str], videos: Dict[str, Dict]) -> Path:
    """An annotation JSON in the original's format; ``videos`` maps id -> entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({'labels': labels, 'database': videos}))
    return path


def entry(subset: str, label=None, segment=None) -> Dict:
    """One ``database`` entry."""
    ann = {}
    if label is not None:
        ann['label'] = label
    if segment is not None:
        ann['segment'] = list(segment)
    return {'subset': subset, 'annotations': ann}


def make_dataset(root: Path, file_type: str, n_frames=(12, 20, 9, 16), labels=('jump', 'wave'),
                 h: int = 48, w: int = 64, n_train: int = 1) -> Path:
    """A dataset in ``file_type`` layout; returns its annotation file.

    Videos ``<label>_<k>``: k < n_train training, k = n_train validation; frame counts cycle
    through ``n_frames``.
    """
    videos = {}
    for c, label in enumerate(labels):
        for k in range(n_train + 1):
            vid = f'{label}_{k}'
            n = n_frames[((n_train + 1) * c + k) % len(n_frames)]
            frames = moving_frames(n, h, w, seed=(n_train + 1) * c + k)
            if file_type == 'jpg':
                write_jpg_folder(root / label / vid, frames)
                seg = (1, n + 1)
            elif file_type == 'hdf5':
                write_hdf5(root / label / f'{vid}.hdf5', frames)
                seg = (0, n)
            else:
                write_video(root / label / f'{vid}.mp4', frames)
                seg = (0, n)
            videos[vid] = entry('training' if k < n_train else 'validation', label, seg)
    return write_annotation(root / f'{file_type}.json', list(labels), videos)
