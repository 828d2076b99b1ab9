"""Writers: one source video -> one output at a temp path (a jpg folder, an hdf5 file, an mp4).

Each ``write_*`` is a ``runner.Writer`` once its options are bound with ``functools.partial``:
it returns the decoding warning ('' if none) and raises when nothing could be written.
``encode_video`` is the one H.264/MPEG-4 encoding loop (the mp4 converter, the demo videos
and the test fixtures use it).
"""
import itertools
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO, Dict, Iterable, Iterator, List, Optional, Union

import av
import h5py
import numpy as np

from conversion.frames import FrameReader, encode_jpeg
from datasets.formats.hdf5_image import file_image, hdf5_in_memory

CHUNK = 64  # frames appended to an hdf5 dataset at a time


def write_jpgs(src: Path, tmp_dir: Path, size: int, fps: Fraction) -> str:
    """Write the frames of ``src`` as image_%05d.jpg into the new folder ``tmp_dir``."""
    reader = FrameReader(src, size, fps)
    tmp_dir.mkdir()
    for i, frame in enumerate(reader, 1):
        (tmp_dir / f'image_{i:05d}.jpg').write_bytes(encode_jpeg(frame))
    return reader.warning


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


@contextmanager
def open_hdf5_output(tmp_file: Path) -> Iterator['h5py.File']:
    """A new HDF5 file for one converted video, built in memory and written to ``tmp_file`` at the end.

    A full disk is then a plain OSError of that write (HDF5 writing to a full disk can crash
    the process; see ``datasets.formats.hdf5_image``).
    """
    with hdf5_in_memory() as f:
        yield f
        image = file_image(f)
    tmp_file.write_bytes(image)


def write_hdf5(src: Path, tmp_file: Path, size: int, fps: Fraction) -> str:
    """Write the JPEG bytes of every frame of ``src`` into the dataset 'video' of ``tmp_file``."""
    reader = FrameReader(src, size, fps)
    with open_hdf5_output(tmp_file) as f:
        video = JpegSeries(f, 'video')
        for frame in reader:
            video.append(encode_jpeg(frame))
        video.flush()
    return reader.warning


def encode_video(target: Union[Path, BinaryIO], frames: Iterable[np.ndarray], codec: str,
                 rate: Union[int, Fraction], options: Optional[Dict[str, str]] = None,
                 bit_rate: Optional[int] = None, container_format: Optional[str] = None) -> int:
    """Encode RGB uint8 frames (H x W x 3, one size) as yuv420p at a constant ``rate``; returns their count.

    ``target`` is a path or a seekable binary file; the container format follows its name
    unless ``container_format`` says otherwise.
    """
    target = str(target) if isinstance(target, Path) else target
    n = 0
    with av.open(target, 'w', format=container_format) as container:
        stream = None
        for n, frame in enumerate(frames, 1):
            if stream is None:
                stream = container.add_stream(codec, rate=rate, options=options or {})
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = 'yuv420p'
                if bit_rate:
                    stream.bit_rate = bit_rate
            image = av.VideoFrame.from_ndarray(frame, format='rgb24')
            image.pts, image.time_base = n - 1, 1 / Fraction(rate)
            container.mux(stream.encode(image))
        if stream is not None:
            container.mux(stream.encode())
    return n


def write_mp4(src: Path, tmp_file: Path, size: int, gop: int, crf: int, tune: str = 'fastdecode') -> str:
    """Re-encode ``src`` into ``tmp_file`` as H.264 with a keyframe every ``gop`` frames."""
    reader = FrameReader(src, size, even=True)
    options = {'crf': str(crf), 'g': str(gop), 'keyint_min': str(gop), 'sc_threshold': '0',
               'bf': '0'}
    if tune != 'none':
        options['tune'] = tune
    frames = iter(reader)
    first = next(frames)  # the source's rate is known once decoding has started
    encode_video(tmp_file, itertools.chain([first], frames), 'libx264', reader.rate, options,
                 container_format='mp4')
    return reader.warning
