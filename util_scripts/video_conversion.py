"""Shared machinery of generate_video_jpgs, generate_video_hdf5 and generate_video_mp4.

Layout: ``SRC/<class>/<video>.<ext>`` -> ``DST/<class>/<stem><suffix>``; for ``activitynet``
SRC is flat: ``SRC/<video>.<ext>`` -> ``DST/<stem><suffix>``. Every regular file is tried
whatever its extension (hidden files such as ``.DS_Store`` are ignored); what FFmpeg cannot read
as a video (text, still images, audio only, empty or truncated files) is reported as a failure.

Decoding uses PyAV (FFmpeg inside the wheel, no system ffmpeg). One output frame per decoded
frame (header frame counts are not used); the display rotation of phone videos is applied, as
the ffmpeg command line did. The short side is scaled to ``size`` in libswscale (bicubic, as
ffmpeg's ``scale`` filter). JPEGs are written by PIL at the fixed ``JPEG_QUALITY`` = 90 with
4:2:0 chroma subsampling, so every frame of every video has the same quantization tables.

Each video is written to a temp name beside its target (``.<name>.tmp-<16 hex digits>``) and
renamed when complete, so an existing target is a finished video and is skipped on rerun; temp
names left by killed runs are removed at the start of the next run (do not point two runs at
one DST at the same time). A decoding error in the middle of a file keeps the frames decoded
before it and is reported as a warning; a video with no decoded frame is a failure and leaves
nothing behind. A worker process that dies fails only the video it was converting.
"""
import argparse
import os
import re
import secrets
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from fractions import Fraction
from io import BytesIO
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable, Iterator, List, Optional, Sequence, Tuple, TypeVar

import av
import numpy as np
from PIL import Image
from tqdm import tqdm

from datasets.formats.video_files import UnreadableVideo, frame_rate, open_video, video_stream

DATASETS = ('kinetics', 'mit', 'ucf101', 'hmdb51', 'activitynet')
FLAT_DATASETS = ('activitynet',)
JPEG_QUALITY = 90
JPEG_SUBSAMPLING = 2  # PIL's code for 4:2:0
DEFAULT_RATE = Fraction(25)
TEMP_NAME = re.compile(r'^\..*\.tmp-[0-9a-f]{16}$')

T = TypeVar('T')
# A writer turns one source video into the output at the given temp path and returns a
# warning ('' when none); it must be picklable (a module-level function or a partial of one).
Writer = Callable[[Path, Path], str]


class ConversionError(Exception):
    """A video that cannot be converted; the message is the one-line reason."""


@dataclass(frozen=True)
class Video:
    """One source file and the output path it converts to."""
    src: Path
    dst: Path


@dataclass
class Outcome:
    """What happened to one video: status is 'converted', 'skipped' or 'failed'."""
    video: Video
    status: str
    reason: str = ''
    warning: str = ''


# ----------------------------------------------------------------------------- finding videos

def find_videos(src_root: Path, dst_root: Path, dataset: str, suffix: str = '') -> List[Video]:
    """List the source files of a dataset layout with the output path of each, sorted."""
    if dataset in FLAT_DATASETS:
        pairs = [(f, dst_root) for f in _visible_files(src_root)]
    else:
        pairs = [(f, dst_root / d.name) for d in _visible(src_root) if d.is_dir()
                 for f in _visible_files(d)]
    return [Video(f, out_dir / (f.stem + suffix)) for f, out_dir in pairs]


def _visible(directory: Path) -> List[Path]:
    return sorted(p for p in directory.iterdir() if not p.name.startswith('.'))


def _visible_files(directory: Path) -> List[Path]:
    return [p for p in _visible(directory) if p.is_file()]


def temp_path(dst: Path) -> Path:
    """A fresh temp name beside ``dst`` that the stale-temp cleanup recognises."""
    # the name is cut so that the temp name stays within the usual 255-byte limit
    return dst.with_name(f'.{dst.name[:200]}.tmp-{secrets.token_hex(8)}')


def remove_stale_temps(directories: Iterable[Path]) -> int:
    """Delete temp outputs left by killed runs in the given directories; return how many."""
    removed = 0
    for directory in directories:
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            if TEMP_NAME.match(entry.name):
                _remove(entry)
                removed += 1
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


# ----------------------------------------------------------------------------- decoding

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
    early ('' if none). Iteration raises ConversionError when no frame could be decoded.
    ``fps`` > 0 resamples by presentation time; ``even`` rounds both sides to even numbers.
    """

    def __init__(self, path: Path, size: int, fps: Optional[Fraction] = None,
                 even: bool = False):
        self.path, self.size, self.fps, self.even = Path(path), size, fps, even
        self.rate = DEFAULT_RATE
        self.count = 0
        self.warning = ''
        self._shape: Optional[Tuple[int, int]] = None

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
        if self.count == 0:
            raise ConversionError(self.warning or 'no frames decoded')

    def _decode(self, container: 'av.container.InputContainer',
                stream: 'av.video.stream.VideoStream') -> Iterator['av.VideoFrame']:
        decoded = container.decode(stream)
        n = 0
        while True:
            try:
                frame = next(decoded)
            except StopIteration:
                return
            except Exception as e:  # whatever the demuxer or decoder raised ends the video here
                self.warning = f'decoding stopped after {n} frames: {error_line(e)}'
                return
            n += 1
            yield frame

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
    """JPEG bytes of an RGB frame at the fixed JPEG_QUALITY."""
    buffer = BytesIO()
    Image.fromarray(frame).save(buffer, format='JPEG', quality=JPEG_QUALITY,
                                subsampling=JPEG_SUBSAMPLING)
    return buffer.getvalue()


def error_line(e: BaseException) -> str:
    """A one-line description of an exception."""
    if isinstance(e, (ConversionError, UnreadableVideo)):
        text = str(e)
    elif isinstance(e, av.FFmpegError) and e.strerror:
        text = e.strerror
    else:
        text = f'{type(e).__name__}: {e}'
    return ' '.join(text.split())


# ----------------------------------------------------------------------------- one video

def convert_video(video: Video, writer: Writer) -> Outcome:
    """Write one video through a temp name and rename it into place; never raises Exception."""
    if video.dst.exists():
        return Outcome(video, 'skipped')
    tmp = temp_path(video.dst)
    try:
        video.dst.parent.mkdir(parents=True, exist_ok=True)
        warning = writer(video.src, tmp)
        if tmp.is_file():
            _fsync(tmp)
        os.replace(tmp, video.dst)
    except Exception as e:
        _remove(tmp)
        return Outcome(video, 'failed', reason=error_line(e))
    except BaseException:
        _remove(tmp)
        raise
    return Outcome(video, 'converted', warning=warning)


def _fsync(path: Path) -> None:
    with open(path, 'rb') as f:
        os.fsync(f.fileno())


# ----------------------------------------------------------------------------- many videos

def convert_all(videos: Sequence[Video], writer: Writer, n_jobs: int) -> Iterator[Outcome]:
    """Convert videos in this process (n_jobs 1) or in a pool of n_jobs processes."""
    if n_jobs == 1:
        for video in videos:
            yield convert_video(video, writer)
        return
    pending = list(videos)
    while pending:
        # A worker that dies (a crash inside FFmpeg, the OOM killer) breaks every pending job
        # of the pool. The unfinished ones are retried in a fresh pool in reverse order, so
        # the ones that were running at the crash come last; without progress, each runs alone.
        broken = []
        for video, outcome in _pool_round(pending, writer, min(n_jobs, len(pending))):
            if outcome is not None:
                yield outcome
            else:
                broken.append(video)
        # the pool is shut down: temp outputs of the killed workers can go
        remove_stale_temps({v.dst.parent for v in broken})
        if broken and len(pending) == 1:
            yield Outcome(broken[0], 'failed', reason='the worker process died')
            return
        if broken and len(broken) == len(pending):
            for video in broken:
                yield from convert_all([video], writer, n_jobs)
            return
        pending = broken[::-1]


def _pool_round(videos: Sequence[Video], writer: Writer, workers: int
                ) -> Iterator[Tuple[Video, Optional[Outcome]]]:
    # spawn: no fork of a parent that holds FFmpeg or tqdm threads
    with ProcessPoolExecutor(workers, mp_context=get_context('spawn')) as pool:
        futures = {pool.submit(convert_video, v, writer): v for v in videos}
        try:
            for future in as_completed(futures):
                try:
                    yield futures[future], future.result()
                except BrokenProcessPool:
                    yield futures[future], None
                except Exception as e:  # e.g. a writer that cannot be pickled
                    yield futures[future], Outcome(futures[future], 'failed',
                                                   reason=error_line(e))
        except BaseException:  # Ctrl-C: do not start the queued videos
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def available_cpus() -> int:
    """The number of CPUs this process may run on."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def run_conversion(src_root: Path, dst_root: Path, dataset: str, suffix: str, writer: Writer,
                   n_jobs: Optional[int] = None) -> int:
    """Convert a dataset tree, show progress and a summary; return the exit code (0, 1 or 2)."""
    src_root, dst_root, dataset = Path(src_root), Path(dst_root), dataset.lower()
    if not src_root.is_dir():
        print(f'error: source folder {src_root} does not exist', file=sys.stderr)
        return 2
    if dataset not in DATASETS:
        print(f'note: unknown dataset {dataset!r}, using the class-folder layout of kinetics')
    n_jobs = n_jobs if n_jobs and n_jobs > 0 else available_cpus()
    videos = find_videos(src_root, dst_root, dataset, suffix)
    remove_stale_temps({v.dst.parent for v in videos})
    outcomes, todo = _clashes(videos), []
    taken = {o.video for o in outcomes}
    for video in videos:
        if video in taken:
            continue
        if video.dst.exists():
            outcomes.append(Outcome(video, 'skipped'))
        else:
            todo.append(video)
    with tqdm(total=len(todo), unit='video', dynamic_ncols=True) as bar:
        for outcome in convert_all(todo, writer, n_jobs):
            outcomes.append(outcome)
            bar.update()
    print_summary(outcomes, src_root)
    return 1 if any(o.status == 'failed' for o in outcomes) else 0


def _clashes(videos: Sequence[Video]) -> List[Outcome]:
    # two sources with the same stem in one folder (a.mp4, a.webm) would write the same output
    first = {}
    clashes = []
    for video in videos:
        if video.dst in first:
            reason = f'same output name as {_show(Path(first[video.dst].src.name))}'
            clashes.append(Outcome(video, 'failed', reason=reason))
        else:
            first[video.dst] = video
    return clashes


def print_summary(outcomes: Sequence[Outcome], src_root: Path) -> None:
    """Print the counts, then one line per failed video and per warning."""
    count = {s: sum(o.status == s for o in outcomes) for s in ('converted', 'skipped', 'failed')}
    warned = [o for o in outcomes if o.warning]
    print(f"converted {count['converted']}, skipped {count['skipped']} (already done), "
          f"failed {count['failed']}, warnings {len(warned)}")
    for o in sorted(outcomes, key=lambda o: o.video.src):
        if o.status == 'failed':
            print(f'FAILED  {_show(o.video.src, src_root)}: {o.reason}')
    for o in sorted(warned, key=lambda o: o.video.src):
        print(f'WARNING {_show(o.video.src, src_root)}: {o.warning}')


def _show(path: Path, root: Optional[Path] = None) -> str:
    if root is not None:
        try:
            path = path.relative_to(root)
        except ValueError:
            pass
    # file names that are not valid UTF-8 must not break the summary
    return str(path).encode('utf-8', 'backslashreplace').decode('utf-8')


# ----------------------------------------------------------------------------- command line

def parse_fps(text: str) -> Fraction:
    """An --fps value: a number or a ratio such as 30000/1001; -1 keeps every frame."""
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f'not a frame rate: {text!r}')


def positive_int(text: str) -> int:
    """An argparse type for integers above zero."""
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f'must be positive: {text}')
    return value


def add_fps_argument(parser: argparse.ArgumentParser, note: str = '') -> None:
    """The converters' ``--fps`` option (-1: every frame)."""
    parser.add_argument('--fps', type=parse_fps, default=Fraction(-1),
                        help='Output frame rate, picked by presentation time (-1: every frame)' + note)


def base_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every conversion script takes: SRC DST DATASET --n_jobs --size."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument('src', type=Path, metavar='SRC', help='Folder of source videos')
    parser.add_argument('dst', type=Path, metavar='DST', help='Output folder')
    parser.add_argument('dataset', metavar='DATASET',
                        help=f'{", ".join(DATASETS)} (activitynet: SRC holds the videos '
                             f'directly; any other name: class folders, as kinetics)')
    parser.add_argument('--n_jobs', type=int, default=None,
                        help='Processes (default: all CPUs; -1 too; 1: no pool)')
    parser.add_argument('--size', type=positive_int, default=240,
                        help='Short side of the output frames')
    return parser
