"""Decoding a source video into scaled RGB frames, and encoding frames as JPEG.

Decoding uses PyAV through ``datasets.formats.video_files``. One output frame per decoded
frame (header frame counts are not used); the display rotation of phone videos is applied, as
the ffmpeg command line did. The short side is scaled to ``size`` in libswscale (bicubic, as
ffmpeg's ``scale`` filter). JPEGs are written by PIL at the fixed ``JPEG_QUALITY`` = 90 with
4:2:0 chroma subsampling, so every frame of every video has the same quantization tables.
"""
import errno
from fractions import Fraction
from io import BytesIO
from pathlib import Path
from typing import Iterable, Iterator, Optional, Tuple, TypeVar

import av
import numpy as np
from PIL import Image

from common.atomic import os_error_text
from datasets.formats.video_files import (SequentialDecode, UnreadableVideo, declared_frames, frame_rate, open_video,
                                          truncation, video_stream)

JPEG_QUALITY = 90
JPEG_SUBSAMPLING = 2  # PIL's code for 4:2:0
DEFAULT_RATE = Fraction(25)

T = TypeVar('T')


class ConversionError(Exception):
    """A video that cannot be converted; the message is the one-line reason."""


def error_line(e: BaseException) -> str:
    """A one-line description of an exception."""
    if isinstance(e, (ConversionError, UnreadableVideo)):
        text = str(e)
    elif isinstance(e, OSError) and e.errno in errno.errorcode:  # 'ENOSPC: no space left on device'
        text = os_error_text(e)
    elif isinstance(e, av.FFmpegError) and e.strerror:
        text = e.strerror
    else:
        text = f'{type(e).__name__}: {e}'
    return ' '.join(text.split())


def output_size(width: int, height: int, size: int, even: bool = False) -> Tuple[int, int]:
    """(width, height) with the short side scaled to ``size`` and the aspect ratio kept."""
    def fit(x: float) -> int:
        return max(2, int(x / 2 + 0.5) * 2) if even else max(1, int(x + 0.5))
    scale = size / min(width, height)
    return fit(width * scale), fit(height * scale)


def pick_by_time(timed: Iterable[Tuple[Fraction, Fraction, T]], fps: Fraction) -> Iterator[T]:
    """Resample to ``fps``: for each output time k/fps yield the item being displayed then.

    ``timed`` yields (presentation time, duration, item) in display order; the first item's
    time is time 0 and the last item is displayed until its time plus its duration.
    """
    k, start, current, end = 0, None, None, Fraction(0)
    for t, duration, item in timed:
        if start is None:
            start = t
        t -= start
        if current is not None:
            while k < t * fps:
                yield current
                k += 1
        current, end = item, t + duration
    if current is not None:
        while k < end * fps:
            yield current
            k += 1


def stream_rate(stream: 'av.video.stream.VideoStream') -> Fraction:
    """The stream's frame rate (see ``video_files.frame_rate``), else 25, as a simple ratio."""
    return (frame_rate(stream) or DEFAULT_RATE).limit_denominator(1001)


class FrameReader:
    """Decode a video into uint8 RGB arrays (H, W, 3) with the short side scaled to ``size``.

    Iterate once. After iteration ``rate`` is the source average frame rate, ``count`` the
    number of frames yielded and ``warning`` describes a decoding error that ended the video
    early, or far fewer frames than the header declares ('' if none). Iteration raises
    ConversionError when no frame could be decoded.
    ``fps`` > 0 resamples by presentation time; ``even`` rounds both sides to even numbers.
    """

    def __init__(self, path: Path, size: int, fps: Optional[Fraction] = None,
                 even: bool = False):
        self.path, self.size, self.fps, self.even = Path(path), size, fps, even
        self.rate = DEFAULT_RATE
        self.count = 0
        self.warning = ''
        self._shape: Optional[Tuple[int, int]] = None
        self._source: Optional[SequentialDecode] = None  # the source's decode (its count: before any --fps resampling)

    def __iter__(self) -> Iterator[np.ndarray]:
        with open_video(self.path) as container:
            stream = video_stream(container)
            self.rate = stream_rate(stream)
            frames: Iterable[av.VideoFrame] = self._decode(container, stream)
            if self.fps is not None and self.fps > 0:
                frames = pick_by_time(self._timed(frames), self.fps)
            previous, array = None, None
            for frame in frames:
                if frame is not previous:  # --fps above the source rate repeats frames
                    previous, array = frame, self._to_rgb(frame)
                self.count += 1
                yield array
            decoded = self._source.count if self._source is not None else 0
            self.warning = self.warning or truncation(decoded, declared_frames(stream))
        if self.count == 0:
            raise ConversionError(self.warning or 'no frames decoded')

    def _decode(self, container: 'av.container.InputContainer',
                stream: 'av.video.stream.VideoStream') -> Iterator['av.VideoFrame']:
        decode = self._source = SequentialDecode(container, stream)
        yield from decode
        if decode.error is not None:
            self.warning = f'decoding stopped after {decode.count} frames: {error_line(decode.error)}'

    def _timed(self, frames: Iterable['av.VideoFrame']
               ) -> Iterator[Tuple[Fraction, Fraction, 'av.VideoFrame']]:
        step = 1 / self.rate
        t = -step
        for frame in frames:
            if frame.pts is not None and frame.time_base is not None:
                t = frame.pts * Fraction(frame.time_base)
            else:
                t += step
            duration = frame.duration * Fraction(frame.time_base) if (
                frame.duration and frame.time_base is not None) else step
            yield t, duration, frame

    def _to_rgb(self, frame: 'av.VideoFrame') -> np.ndarray:
        if self._shape is None:  # from the first frame, so a resolution change keeps one size
            self._shape = output_size(frame.width, frame.height, self.size, self.even)
        width, height = self._shape
        array = frame.reformat(width=width, height=height, format='rgb24',
                               interpolation='BICUBIC').to_ndarray()
        turns = round(frame.rotation / 90) % 4  # counterclockwise, as np.rot90
        return np.ascontiguousarray(np.rot90(array, turns)) if turns else array


def encode_jpeg(frame: np.ndarray) -> bytes:
    """JPEG bytes of an RGB (or greyscale) frame at the fixed JPEG_QUALITY."""
    buffer = BytesIO()
    Image.fromarray(frame).save(buffer, format='JPEG', quality=JPEG_QUALITY,
                                subsampling=JPEG_SUBSAMPLING)
    return buffer.getvalue()
