"""Decode videos into one HDF5 file each, holding the JPEG bytes of every frame.

    python -m util_scripts.generate_video_hdf5 SRC DST DATASET [--n_jobs N] [--fps F] [--size 240]

``SRC/<class>/<video>.<ext>`` -> ``DST/<class>/<stem>.hdf5`` (activitynet: ``DST/<stem>.hdf5``).
The file holds one dataset ``video`` of shape (n_frames,) and dtype vlen uint8; element i is
the JPEG (quality 90) of frame i+1, the original's layout:
``Image.open(io.BytesIO(f['video'][i]))``. Frames are encoded in memory, never written as jpg
files. Options, resume, summary and exit codes are those of generate_video_jpgs.
"""
import functools
import sys
from fractions import Fraction
from pathlib import Path
from typing import List, Optional

import h5py
import numpy as np

from util_scripts.video_conversion import (FrameReader, base_parser, encode_jpeg, parse_fps,
                                           run_conversion)

CHUNK = 64  # frames appended to the dataset at a time


def write_hdf5(src: Path, tmp_file: Path, size: int, fps: Fraction) -> str:
    """Write the JPEG bytes of every frame of ``src`` into the dataset 'video' of ``tmp_file``."""
    reader = FrameReader(src, size, fps)
    # locking=False: each process writes only its own temp file, and some file systems
    # (NFS) refuse HDF5's locks
    with h5py.File(tmp_file, 'w', locking=False) as f:
        video = f.create_dataset('video', shape=(0,), maxshape=(None,), chunks=(CHUNK,),
                                 dtype=h5py.vlen_dtype(np.dtype('uint8')))
        batch = []
        for frame in reader:
            batch.append(np.frombuffer(encode_jpeg(frame), dtype=np.uint8))
            if len(batch) == CHUNK:
                _append(video, batch)
                batch = []
        _append(video, batch)
    return reader.warning


def _append(dataset: 'h5py.Dataset', items: List[np.ndarray]) -> None:
    start = dataset.shape[0]
    dataset.resize((start + len(items),))
    # one element at a time: a slice assignment of equal-length arrays is taken as 2-D by h5py
    for i, item in enumerate(items):
        dataset[start + i] = item


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument('--fps', type=parse_fps, default=Fraction(-1),
                        help='Output frame rate, picked by presentation time (-1: every frame)')
    args = parser.parse_args(argv)
    writer = functools.partial(write_hdf5, size=args.size, fps=args.fps)
    return run_conversion(args.src, args.dst, args.dataset, '.hdf5', writer, args.n_jobs)


if __name__ == '__main__':
    sys.exit(main())
