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

from util_scripts.video_conversion import (FrameReader, add_fps_argument, base_parser, encode_jpeg,
                                           run_conversion)

CHUNK = 64  # frames appended to a dataset at a time


class JpegSeries:
    """An HDF5 dataset of JPEG bytes (vlen uint8, one element per frame), appended in chunks."""

    def __init__(self, f: 'h5py.File', name: str):
        self.dataset = f.create_dataset(name, shape=(0,), maxshape=(None,), chunks=(CHUNK,),
                                        dtype=h5py.vlen_dtype(np.dtype('uint8')))
        self.pending: List[np.ndarray] = []

    def append(self, jpeg: bytes) -> None:
        """Queue one frame's JPEG; written with the next full chunk or ``flush``."""
        self.pending.append(np.frombuffer(jpeg, dtype=np.uint8))
        if len(self.pending) == CHUNK:
            self.flush()

    def flush(self) -> None:
        """Write the queued frames."""
        start = self.dataset.shape[0]
        self.dataset.resize((start + len(self.pending),))
        # one element at a time: a slice assignment of equal-length arrays is taken as 2-D by h5py
        for i, item in enumerate(self.pending):
            self.dataset[start + i] = item
        self.pending = []


def write_hdf5(src: Path, tmp_file: Path, size: int, fps: Fraction) -> str:
    """Write the JPEG bytes of every frame of ``src`` into the dataset 'video' of ``tmp_file``."""
    reader = FrameReader(src, size, fps)
    # locking=False: each process writes only its own temp file, and some file systems
    # (NFS) refuse HDF5's locks
    with h5py.File(tmp_file, 'w', locking=False) as f:
        video = JpegSeries(f, 'video')
        for frame in reader:
            video.append(encode_jpeg(frame))
        video.flush()
    return reader.warning


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = base_parser(__doc__.splitlines()[0])
    add_fps_argument(parser)
    args = parser.parse_args(argv)
    writer = functools.partial(write_hdf5, size=args.size, fps=args.fps)
    return run_conversion(args.src, args.dst, args.dataset, '.hdf5', writer, args.n_jobs)


if __name__ == '__main__':
    sys.exit(main())
