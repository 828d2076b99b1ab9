"""The one policy for opening a video file with PyAV (no torch).

Every reader of encoded videos goes through here: the frame loader (``datasets.loaders``),
the converters (``datasets.conversion``) and the annotation builders. The rules:

- a file is opened with metadata that is not valid UTF-8 ignored (a title in Latin-1 must
  not make a good video unreadable);
- empty files and what FFmpeg reads as a still image or as text (``image2``, ``*_pipe``,
  ``tty``) are not videos;
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


def _is_still_image_or_text(format_name: str) -> bool:
    # FFmpeg reads text files as ANSI art ('tty') and images as one-frame videos
    names = format_name.split(',')
    return any(n in ('tty', 'image2') or n.endswith('_pipe') for n in names)


def open_video(path: PathLike) -> 'av.container.InputContainer':
    """Open a video file for reading; UnreadableVideo if it is empty, an image or text."""
    if os.stat(path).st_size == 0:
        raise UnreadableVideo('empty file')
    container = av.open(str(path), metadata_errors='ignore')
    if _is_still_image_or_text(container.format.name):
        container.close()
        raise UnreadableVideo(f'not a video (read as {container.format.name})')
    return container


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

