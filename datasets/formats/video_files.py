"""The one policy for opening a video file with PyAV and counting its frames (no torch).

Every reader of encoded videos goes through here: the frame loader (``datasets.loaders``),
the converters (``conversion``), the annotation builders (``video_layout``),
``check_dataset`` and ``inference.py``. The rules:

- a file is opened with metadata that is not valid UTF-8 ignored (a title in Latin-1 must
  not make a good video unreadable);
- live sources (``live_sources.open_stream``: ``-`` for standard input, a URL kept as the
  string it is, a V4L2 device, a named pipe) are opened for one pass; a pipe or a device is
  never sniffed or judged by its size (it has none);
- empty files and what FFmpeg reads as a still image or as text (``image2``, ``*_pipe``,
  ``tty``) are not videos; nor is a file whose content is a still image whatever its name
  says (a JPEG named ``.mp4``: "not a video: a JPEG image"), even where FFmpeg opens it as
  a one-frame stream (``gif``, ``webp``); an animated GIF or WebP (two frames or more)
  stays a video;
- the names of video files are those in ``VIDEO_EXTENSIONS`` (the annotation builders list
  only these, and the converters convert only these, counting the other files they pass over);
- the video stream is the first one that is not an attached picture (cover art of an audio
  file is a one-picture "video" stream);
- its frame rate is the average rate, else the guessed rate, else the base rate (None if
  none is positive);
- its frames are the frames a sequential decode from the start of the file gives, in the
  order the decoder gives them, up to the first decoding error: exactly the frames the
  converters write. Frame ``i`` (0-based) of every reader is the i-th of these. Far fewer
  frames than the header declares (``truncation``: a file cut short decodes to its end without
  an error) is a fault the converters warn of and ``check_dataset`` reports.

Counting frames (``frame_table``): demuxed packets are not frames. A decoder drops the
leading pictures of a stream cut inside an open GOP (B-frames whose references are gone) and
everything before its first keyframe, makes one frame of two field packets and none of a
not-coded (N-VOP) packet. So the packets are trusted only when the demuxer proves them
(every packet has a presentation time and they are distinct, the first packet is a keyframe
and no packet is shown before it) and decoding the head of the stream (up to its third
keyframe, at most ``HEAD_PACKETS`` packets) gives exactly one frame per packet with the
packet's time; then the count costs a demux and a few decoded frames, in one pass over the file
opened once. Otherwise (a stream
cut inside a GOP, packets without or with shared times, a head that decodes to other frames
or fails) the whole stream is decoded once. A decoding error after the head is not seen by a
packet count: ``check_dataset`` (without ``--quick``) reports it, and the loader replaces and
counts the frames that do not decode. The table is cached per file (path, size and modification time), and
``datasets.loaders`` caches the index it builds from it. A table stored beside the video
(``frame_table_file``; ``store_frame_table``, run by ``generate_video_mp4`` and
``write_frame_tables``) is read instead of built when it is that video's.

The table also says where a decoder may start: the keyframes with a distinct presentation
time, each with the timestamp to seek to (its packet's decoding time, which the demuxers'
seek indexes use; seeking by presentation time lands after the keyframe in MPEG program
streams). The loader verifies every seek and falls back to decoding from the start.
"""
import functools
import os
import stat
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import av

from datasets.formats import frame_table_file

PathLike = Union[str, os.PathLike]

# the names the annotation builders and the converters recognise as videos
VIDEO_EXTENSIONS = frozenset({
    '.mp4', '.m4v', '.mov', '.qt', '.3gp', '.3g2', '.f4v', '.mj2',   # ISO base media
    '.avi', '.divx', '.xvid', '.mkv', '.webm', '.ogv', '.flv', '.wmv', '.asf', '.rm',
    '.rmvb', '.nut', '.ivf', '.y4m',
    '.mpg', '.mpeg', '.mpe', '.mpv', '.m1v', '.m2v', '.mp2v', '.vob', '.mod', '.tod',  # MPEG-1/2
    '.ts', '.mts', '.m2t', '.m2ts', '.tp', '.trp',                   # MPEG transport streams
    '.h264', '.264', '.h265', '.265', '.hevc',                       # elementary streams
})
HEAD_PACKETS = 64  # packets decoded to confirm that the packets are the frames


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
    info = os.stat(path)
    regular = stat.S_ISREG(info.st_mode)  # a pipe or a device has no size, and is read once: no sniffing
    if regular and info.st_size == 0:
        raise UnreadableVideo('empty file')
    return opened(av.open(str(path), metadata_errors='ignore'), image_kind(path) if regular else None)


def opened(container: 'av.container.InputContainer', kind: Optional[str]) -> 'av.container.InputContainer':
    """``container``, or UnreadableVideo (closed) if it reads as a still image or text."""
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


class SequentialDecode:
    """The frames of a stream decoded from where the container stands, up to the first error (the frames every
    reader counts); after iteration ``count`` is the frames given and ``error`` what ended it early (None)."""

    def __init__(self, container: 'av.container.InputContainer', stream: 'av.video.stream.VideoStream'):
        self.container, self.stream = container, stream
        self.count = 0
        self.error: Optional[BaseException] = None

    def __iter__(self) -> Iterator['av.VideoFrame']:
        decoded = self.container.decode(self.stream)
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                return
            except Exception as e:  # whatever the demuxer or decoder raised ends the video here
                self.error = e
                return
            self.count += 1
            yield frame


def video_stream(container: 'av.container.InputContainer') -> 'av.video.stream.VideoStream':
    """The container's video stream (not cover art); UnreadableVideo if there is none."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise UnreadableVideo('no video stream')


def declared_size(stream: 'av.video.stream.VideoStream') -> Optional[Tuple[int, int]]:
    """(height, width) the stream's header declares (None if it declares none)."""
    context = stream.codec_context
    return (context.height, context.width) if context.width and context.height else None


def declared_frames(stream: 'av.video.stream.VideoStream') -> Optional[int]:
    """The frame count the stream's header declares (None if it declares none: Matroska, MPEG-TS, ...)."""
    return int(stream.frames) if stream.frames and stream.frames > 0 else None


def truncation(decoded: int, declared: Optional[int]) -> str:
    """'' or, when a video gives far fewer frames than its header declares (a tenth fewer and 2 frames or more:
    a file cut short, whose decode ends without an error), the one-line fault."""
    if declared and decoded < declared and declared - decoded >= max(2, declared / 10):
        return f'decodes {decoded} of the {declared} frames its header declares (cut short?)'
    return ''


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


@dataclass
class FrameTable:
    """The frames of a video stream in decoding-output order, and where a decoder may start."""

    pts: List[Optional[int]]        # frame i's presentation time in time_base units (None: unknown)
    seek_points: Dict[int, int]     # keyframe number -> the timestamp that seeks to it
    time_base: Fraction
    rate: Optional[Fraction]
    counted_by: str                 # 'packets' (proven by demuxing) or 'decoding'
    error: str = ''                 # why decoding stopped before the end ('' if it did not)
    stored: bool = False            # read from the file beside the video (frame_table_file)
    distinct: bool = field(init=False)

    def __post_init__(self) -> None:
        self.distinct = None not in self.pts and len(set(self.pts)) == len(self.pts)

    def __len__(self) -> int:
        return len(self.pts)


@dataclass
class _Packet:
    pts: Optional[int]
    dts: Optional[int]
    key: bool


@dataclass
class _Demuxed:
    """One pass over a file: its video packets and the frames that decoding the head of the stream gave."""
    packets: List[_Packet]
    time_base: Fraction
    rate: Optional[Fraction]
    complete: bool                 # demuxing reached the end
    head: Optional[List[Tuple]]    # (pts, corrupt) of the head's frames; None if decoding them failed
    head_packets: int = 0          # the packets decoded for the head: up to the third keyframe, at most HEAD_PACKETS


def _demux_all(path: PathLike) -> _Demuxed:
    """Every packet of the video stream, decoding the head of the stream on the way (one open file)."""
    with open_video(path) as container:
        stream = video_stream(container)
        out = _Demuxed([], Fraction(stream.time_base), frame_rate(stream), False, [])
        keys, in_head = 0, True
        try:
            for p in container.demux(stream):
                if p.size <= 0:
                    continue
                out.packets.append(_Packet(p.pts, p.dts, bool(p.is_keyframe)))
                if in_head:
                    keys += bool(p.is_keyframe)
                    in_head = keys <= 2 and len(out.packets) <= HEAD_PACKETS
                    out.head = _decode_head(out.head, stream, p if in_head else None)
                    out.head_packets += in_head
        except UNREADABLE:
            return out
        if in_head:
            out.head = _decode_head(out.head, stream, None)
    out.complete = True
    return out


def _decode_head(head: Optional[List[Tuple]], stream: 'av.video.stream.VideoStream',
                 packet: Optional['av.Packet']) -> Optional[List[Tuple]]:
    """``head`` with the frames of ``packet`` (None: the decoder flushed); None once decoding failed."""
    if head is None:
        return None
    try:
        frames = packet.decode() if packet is not None else stream.codec_context.decode(None)
    except UNREADABLE:
        return None
    return head + [(f.pts, f.is_corrupt) for f in frames]


def _packets_are_frames(demuxed: _Demuxed) -> bool:
    """True when the demuxer proves one frame per packet and decoding the head agreed."""
    packets, head = demuxed.packets, demuxed.head
    pts = [p.pts for p in packets]
    if not packets or None in pts or len(set(pts)) != len(pts) or head is None:
        return False
    if not packets[0].key or min(pts) != pts[0]:
        return False  # starts inside a GOP, or with leading pictures that lost their references
    return sorted(p for p, _ in head) == sorted(pts[:demuxed.head_packets]) and not any(c for _, c in head)


def _decoded_table(path: PathLike, packets: List[_Packet], time_base: Fraction,
                   rate: Optional[Fraction]) -> FrameTable:
    """The table from a sequential decode of the whole stream (stops at the first error)."""
    pts: List[Optional[int]] = []
    keys: List[int] = []
    error = ''
    with open_video(path) as container:
        stream = video_stream(container)
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except Exception as e:  # noqa: BLE001 - the converters stop at any error too
                error = f'decoding stopped after {len(pts)} frames: {" ".join(str(e).split())}'
                break
            if frame.key_frame:
                keys.append(len(pts))
            pts.append(frame.pts)
    seek_at = {p.pts: p.dts if p.dts is not None else p.pts for p in packets if p.key and p.pts is not None}
    counts: Dict[Optional[int], int] = {}
    for p in pts:
        counts[p] = counts.get(p, 0) + 1
    points = {i: seek_at[pts[i]] for i in keys if pts[i] in seek_at and counts[pts[i]] == 1}
    return FrameTable(pts, points, time_base, rate, 'decoding', error)


def _packet_table(packets: List[_Packet], time_base: Fraction, rate: Optional[Fraction]) -> FrameTable:
    """The table from demuxed packets the head decode confirmed (display order: by time)."""
    order = sorted(range(len(packets)), key=lambda i: packets[i].pts)
    points = {k: packets[i].dts if packets[i].dts is not None else packets[i].pts
              for k, i in enumerate(order) if packets[i].key}
    return FrameTable([packets[i].pts for i in order], points, time_base, rate, 'packets')


@functools.lru_cache(maxsize=16)  # the loader keeps its own compact indexes; long videos' tables are large
def _cached_table(path: str, size: int, mtime_ns: int) -> FrameTable:
    stored = frame_table_file.read(path)
    return FrameTable(**stored, stored=True) if stored is not None else _built_table(path)


def _built_table(path: PathLike) -> FrameTable:
    demuxed = _demux_all(path)
    if demuxed.complete and _packets_are_frames(demuxed):
        return _packet_table(demuxed.packets, demuxed.time_base, demuxed.rate)
    table = _decoded_table(path, demuxed.packets, demuxed.time_base, demuxed.rate)
    if not table.pts:
        raise UnreadableVideo(table.error or 'no decodable frame')
    return table


def frame_table(path: PathLike) -> FrameTable:
    """The frames of the video (see the module docstring); UNREADABLE errors if there is none."""
    info = os.stat(path)
    return _cached_table(os.fspath(path), info.st_size, info.st_mtime_ns)


def store_frame_table(path: PathLike) -> FrameTable:
    """Build the video's table from the file and store it beside it (``frame_table_file``)."""
    table = _built_table(path)
    frame_table_file.write(path, table_fields(table))
    return table


def table_fields(table: FrameTable) -> Dict[str, Any]:
    """The fields of ``table`` that ``frame_table_file`` stores."""
    return {name: getattr(table, name) for name in ('pts', 'seek_points', 'time_base', 'rate', 'counted_by', 'error')}


def count_frames(path: PathLike) -> int:
    """Number of frames a sequential decode of the video gives (what the converters write)."""
    return len(frame_table(path))


def probe_video(path: PathLike) -> Tuple[int, Optional[float]]:
    """(frames of the video stream, its frame rate or None); see ``frame_table``."""
    table = frame_table(path)
    return len(table), None if table.rate is None else float(table.rate)


def video_fps(path: PathLike) -> Optional[float]:
    """The video stream's frame rate from the header (None if unknown)."""
    with open_video(path) as container:
        rate = frame_rate(video_stream(container))
    return None if rate is None else float(rate)
