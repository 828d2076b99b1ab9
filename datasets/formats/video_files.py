"""The one policy for opening a video file with PyAV (no torch).

Every reader of encoded videos goes through here: the frame loader (``datasets.loaders``),
the converters (``datasets.conversion``) and the annotation builders. The rules:

- a file is opened with metadata that is not valid UTF-8 ignored (a title in Latin-1 must
  not make a good video unreadable);
- empty files and what FFmpeg reads as a still image or as text (``image2``, ``*_pipe``,
  ``tty``) are not videos; nor is a file whose content is a still image whatever its name
  says (a JPEG named ``.mp4``: "not a video: a JPEG image"), even where FFmpeg opens it as
  a one-frame stream (``gif``, ``webp``); an animated GIF or WebP (two frames or more)
  stays a video;
- the video stream is the first one that is not an attached picture (cover art of an audio
  file is a one-picture "video" stream);
- its frame rate is the average rate, else the guessed rate, else the base rate (None if
  none is positive);
- its frames are the demuxed packets that carry data and a presentation time: the frames a
  loader can address, counted without decoding;
- ``UNREADABLE`` lists the exceptions that mean "this file is broken", not a bug.
"""
import os
from fractions import Fraction
from typing import Iterator, Optional, Tuple, Union

import av

PathLike = Union[str, os.PathLike]

# the names annotation builders recognise as videos; the converters try every file
VIDEO_EXTENSIONS = frozenset({
    '.mp4', '.avi', '.mkv', '.webm', '.mov', '.m4v', '.mpg', '.mpeg', '.flv', '.wmv', '.3gp',
    '.ogv', '.ts', '.mts', '.m2ts', '.vob', '.asf', '.divx', '.f4v',
})


class UnreadableVideo(ValueError):
    """A file PyAV opens that is not a video (empty, a still image, text, no video stream)."""


# UnicodeDecodeError and UnreadableVideo are ValueErrors
UNREADABLE: Tuple[type, ...] = (av.FFmpegError, OSError, ValueError)


def has_video_extension(name: str) -> bool:
    """True when the file name ends in one of ``VIDEO_EXTENSIONS`` (any case)."""
    return os.path.splitext(name)[1].lower() in VIDEO_EXTENSIONS


# the first bytes of the still-image formats FFmpeg can open, and their names in messages
IMAGE_SIGNATURES = (
    (b'\xff\xd8\xff', 'a JPEG image'), (b'\x89PNG\r\n\x1a\n', 'a PNG image'),
    (b'GIF87a', 'a GIF image'), (b'GIF89a', 'a GIF image'), (b'BM', 'a BMP image'),
    (b'II*\x00', 'a TIFF image'), (b'MM\x00*', 'a TIFF image'), (b'\x00\x00\x00\x0cjP  ', 'a JPEG 2000 image'),
)


def image_kind(path: PathLike) -> Optional[str]:
    """'a JPEG image' (PNG, GIF, BMP, TIFF, WebP, JPEG 2000) when the file's first bytes say so, else None."""
    with open(path, 'rb') as f:
        head = f.read(16)
    if head[:4] == b'RIFF' and head[8:12] == b'WEBP':
        return 'a WebP image'
    return next((kind for magic, kind in IMAGE_SIGNATURES if head.startswith(magic)), None)


def _is_still_image_or_text(format_name: str) -> bool:
    # FFmpeg reads text files as ANSI art ('tty') and images as one-frame videos
    names = format_name.split(',')
    return any(n in ('tty', 'image2') or n.endswith('_pipe') for n in names)


def open_video(path: PathLike) -> 'av.container.InputContainer':
    """Open a video file for reading; UnreadableVideo if it is empty, an image or text."""
    if os.stat(path).st_size == 0:
        raise UnreadableVideo('empty file')
    kind = image_kind(path)
    container = av.open(str(path), metadata_errors='ignore')
    try:
        if _is_still_image_or_text(container.format.name) or (kind and _one_frame_at_most(container)):
            raise UnreadableVideo(f'not a video: {kind}' if kind else
                                  f'not a video (read as {container.format.name})')
    except BaseException:
        container.close()
        raise
    return container


def _one_frame_at_most(container: 'av.container.InputContainer') -> bool:
    # demuxes up to two frames, then rewinds to the start
    try:
        stream = video_stream(container)
    except UnreadableVideo:
        return True
    frames = sum(1 for _, _ in zip(range(2), frame_packets(container, stream)))
    container.seek(0, backward=True, any_frame=True)
    return frames < 2


def video_stream(container: 'av.container.InputContainer') -> 'av.video.stream.VideoStream':
    """The container's video stream (not cover art); UnreadableVideo if there is none."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise UnreadableVideo('no video stream')


def frame_rate(stream: 'av.video.stream.VideoStream') -> Optional[Fraction]:
    """The stream's average frame rate, else its guessed, else its base rate (None if unknown)."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    return None


def frame_packets(container: 'av.container.InputContainer',
                  stream: 'av.video.stream.VideoStream') -> Iterator['av.Packet']:
    """The stream's packets that hold a frame (data and a presentation time), demuxed only."""
    for packet in container.demux(stream):
        if packet.pts is not None and packet.size > 0:
            yield packet


def probe_video(path: PathLike) -> Tuple[int, Optional[float]]:
    """(frames of the video stream, its frame rate or None) by demuxing, no decoding."""
    with open_video(path) as container:
        stream = video_stream(container)
        n = sum(1 for _ in frame_packets(container, stream))
        rate = frame_rate(stream)
    return n, None if rate is None else float(rate)


def video_fps(path: PathLike) -> Optional[float]:
    """The video stream's frame rate from the header (None if unknown)."""
    with open_video(path) as container:
        rate = frame_rate(video_stream(container))
    return None if rate is None else float(rate)

