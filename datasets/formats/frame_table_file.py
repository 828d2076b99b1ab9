"""Frame tables stored beside video files: ``clip.mp4`` -> ``clip.mp4.frames.json``.

Building a video's frame table (``video_files.frame_table``: demux every packet, decode the
head of the stream) costs more than decoding a 16-frame clip, and at Kinetics scale a
DataLoader worker builds it again for every video in every epoch. A stored table turns that
into reading a small JSON file. ``generate_video_mp4`` writes one for every video it writes;
``util_scripts/write_frame_tables.py`` writes them for videos that exist already.

The format (one JSON object)::

    {"format": "frame-table", "version": 1,
     "video": {"bytes": 123456, "fingerprint": "<blake2b of the first and last 64 KiB>"},
     "time_base": [1, 12800], "rate": [25, 1] or null, "counted_by": "packets" or "decoding",
     "error": "", "pts": [0, 512, ...], "seek_points": [[0, -1024], [16, 7168], ...]}

A table is used only when its ``video`` fingerprint matches the file beside it (so a copy of a
dataset keeps its tables and a re-encoded video does not), it is a regular file of at most
``MAX_FILE_BYTES`` and every value passes its range check; otherwise ``read`` warns in one line
and the caller builds the table from the video. The fingerprint catches mistakes, not intent:
a stored table is data of the dataset, trusted like the videos and annotation files beside it
(whoever can write it can write those). A table that is not the video's slips through only if
it was made so on purpose; then frames are numbered as it says, and the full scan of
``check_dataset`` reports it (each decoded frame's time against the table), after which
``write_frame_tables --force`` rewrites it. It can never make the loader read outside the
video. Standard library only.
"""
import hashlib
import json
import os
import stat
from fractions import Fraction
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from common.atomic import atomic_write_json
from common.faults import report_fault

PathLike = Union[str, os.PathLike]
SUFFIX = '.frames.json'
FORMAT, VERSION = 'frame-table', 1
EDGE = 64 * 1024          # bytes hashed at each end of the video
MAX_FILE_BYTES = 16 << 20  # a 30 fps video of about 18 hours; a longer one's table is built
MAX_FRAMES = 2_000_000     # 18.5 hours at 30 fps
MAX_TIME = 1 << 62
COUNTED_BY = ('packets', 'decoding')


class BadTable(ValueError):
    """A stored table that cannot be used: not this video's, or a value out of range."""


def table_path(video: PathLike) -> Path:
    """Where the table of ``video`` is stored."""
    return Path(os.fspath(video) + SUFFIX)


def fingerprint(video: PathLike) -> Dict[str, Any]:
    """The video's size and a hash of its first and last ``EDGE`` bytes (what ties a table to it)."""
    size = os.stat(video).st_size
    digest = hashlib.blake2b(digest_size=16)
    with open(video, 'rb') as f:
        digest.update(f.read(EDGE))
        if size > EDGE:
            f.seek(max(EDGE, size - EDGE))
            digest.update(f.read(EDGE))
    return {'bytes': size, 'fingerprint': digest.hexdigest()}


def table_record(video: PathLike, fields: Dict[str, Any]) -> Dict[str, Any]:
    """The stored form of the table ``fields`` (``FrameTable``'s: pts, seek_points, time_base, rate,
    counted_by, error) of ``video`` (tied to it by its fingerprint; a shard carries it too)."""
    rate = fields['rate']
    return {'format': FORMAT, 'version': VERSION, 'video': fingerprint(video),
            'time_base': [fields['time_base'].numerator, fields['time_base'].denominator],
            'rate': None if rate is None else [rate.numerator, rate.denominator],
            'counted_by': fields['counted_by'], 'error': fields['error'], 'pts': list(fields['pts']),
            'seek_points': sorted([int(k), int(v)] for k, v in fields['seek_points'].items())}


def write(video: PathLike, fields: Dict[str, Any]) -> Path:
    """Store the table ``fields`` beside ``video``, atomically (``table_record``)."""
    return atomic_write_json(table_path(video), table_record(video, fields))


def read(video: PathLike) -> Optional[Dict[str, Any]]:
    """The stored table of ``video`` as ``FrameTable`` fields; None when there is none or it
    cannot be used (then with a one-line warning naming the file and why)."""
    path = table_path(video)
    try:
        record = json.loads(_read_regular_file(path, MAX_FILE_BYTES))
        return _checked(record, video)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, RecursionError, MemoryError) as e:  # JSONDecodeError and BadTable are ValueErrors
        report_fault(f'{path}: frame table not used ({e}); building it from the video')
        return None


def _read_regular_file(path: Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes (a FIFO or a
    device such as /dev/zero behind the name would block or never end)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, 'rb') as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise BadTable('not a regular file')
        data = f.read(limit + 1)
    if len(data) > limit:
        raise BadTable(f'larger than {limit >> 20} MB')
    return data


def _fraction(value: Any, name: str, optional: bool = False) -> Optional[Fraction]:
    if value is None and optional:
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(_is_int(v) and 0 < v < MAX_TIME for v in value)):
        raise BadTable(f'{name} is not two positive integers')
    return Fraction(value[0], value[1])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked(record: Any, video: PathLike) -> Dict[str, Any]:
    if not isinstance(record, dict) or record.get('format') != FORMAT:
        raise BadTable('not a frame table')
    if record.get('version') != VERSION:
        raise BadTable(f"version {record.get('version')!r}, this code reads {VERSION}")
    if record.get('video') != fingerprint(video):
        raise BadTable('written for another version of the video')
    pts: List[Optional[int]] = record.get('pts')  # type: ignore[assignment]
    if not (isinstance(pts, list) and 0 < len(pts) <= MAX_FRAMES
            and all(p is None or (_is_int(p) and -MAX_TIME < p < MAX_TIME) for p in pts)):
        raise BadTable(f'pts is not a list of 1 to {MAX_FRAMES} times')
    points = record.get('seek_points')
    if not (isinstance(points, list) and all(
            isinstance(p, list) and len(p) == 2 and _is_int(p[0]) and 0 <= p[0] < len(pts)
            and _is_int(p[1]) and -MAX_TIME < p[1] < MAX_TIME for p in points)):
        raise BadTable('seek_points is not a list of [frame, time] pairs within the video')
    counted_by, error = record.get('counted_by'), record.get('error')
    if counted_by not in COUNTED_BY or not isinstance(error, str) or len(error) > 2000:
        raise BadTable('counted_by or error is not valid')
    return {'pts': pts, 'seek_points': {k: t for k, t in points}, 'counted_by': counted_by, 'error': error,
            'time_base': _fraction(record.get('time_base'), 'time_base'),
            'rate': _fraction(record.get('rate'), 'rate', optional=True)}
