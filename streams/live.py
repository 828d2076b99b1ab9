"""``inference.py --live SOURCE``: a model on a stream as it arrives, one JSON line per window.

A reader thread decodes the source (``streams.frames`` with ``open_stream``: a file played at
its own frame rate, standard input, a URL, a V4L2 camera, a pipe), makes the checkpoint's
clips as frames arrive (``streams.windows``) and offers each complete window to the model;
a window that completes while an earlier one is still waiting replaces it, and the one
replaced is counted as dropped: the output never falls behind the stream. The main thread
scores each window it takes and prints, flushed at once::

    {"t": 12.8, "start": 12.16, "end": 12.8, "top": [["label", 0.91], ...], "latency_ms": 41.3}

(``t`` the stream seconds at the window's end, ``latency_ms`` from the decode of the window's
last frame to the line). ``--live_smooth N`` ranks the mean of the last N windows' scores. At
the end of the stream, after ``--live_timeout`` seconds without a frame, or on Ctrl-C / SIGTERM
it prints one summary line on stderr (windows, drops, mean and p95 latency, real-time factor:
model seconds per stream second) and returns 0; a source that cannot be opened is one error
line and 2. ``--annotate OUT.mp4`` writes the stream with the latest top label on each frame.
"""
import json
import queue
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Deque, Iterator, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn

from datasets.encoded_clip import decoded
from datasets.formats.live_sources import is_stream
from evaluation.metrics import top_classes
from preprocessing import normalization
from runs.stopping import StopSignals
from streams.frames import Frame, FrameStream
from streams.timeline import score_clips
from streams.windows import ClipWindows, Window


def add_live_args(parser: Any) -> None:
    """``--live``, ``--live_smooth`` and ``--live_timeout`` for ``inference.py``."""
    from common.cli import POSITIVE, float_in
    parser.add_argument('--live', default=None, metavar='SOURCE',
                        help='score a stream as it arrives, one JSON line per window: a file (played at its own '
                             'rate), - (standard input), a URL FFmpeg opens, or a camera (/dev/video0)')
    parser.add_argument('--live_smooth', type=POSITIVE, default=1, help='--live: rank the mean of the last N windows')
    parser.add_argument('--live_timeout', type=float_in(0, open_lo=True), default=10.0,
                        help='--live: seconds without a frame after which the stream counts as stalled and ends')


def check_sources(args: Any, parser: Any) -> None:
    """``inference.py``'s inputs and the flags that cannot go with them: video files or one ``--live`` source,
    nothing a stream cannot give with ``--live`` or ``--timeline``, a stream (read once) only where it is read
    once; ``args.videos`` made paths, URLs kept as written."""
    if bool(args.videos) == bool(args.live):
        parser.error('give video files, or one stream with --live SOURCE')
    clash = [f for f, v in (('--timeline', args.timeline), ('--output', args.output), ('--features', args.features),
                            ('--cam', args.cam)) if v] if args.live else []
    if clash:
        parser.error(f'--live prints one JSON line per window: {clash[0]} is for video files')
    if args.timeline is not None and (args.features or args.cam):
        parser.error(f"--timeline streams the frames: {'--features' if args.features else '--cam'} needs "
                     'the whole-video path; run it without --timeline')
    once = [v for v in args.videos if is_stream(v)]
    if once and args.timeline is None:
        parser.error(f'{once[0]}: a stream can be read only once, front to back: use --live {once[0]}, '
                     'or --timeline OUT_DIR')
    args.videos = [v if v == '-' or '://' in v else Path(v) for v in args.videos]  # a URL stays as written


@dataclass
class Pending:
    """A complete window waiting for the model, and when its last frame was decoded (perf_counter)."""
    window: Window
    arrival: float


class LiveReader(threading.Thread):
    """Decodes the source and offers its windows; ``take`` gives the newest one not taken yet."""

    def __init__(self, source: str, windows: ClipWindows, paced: bool, timeout: float,
                 on_frame: Optional[Callable[[Frame, float], None]] = None):
        super().__init__(daemon=True)  # a read blocked on a stalled pipe must not keep the process alive
        self.stream = FrameStream(source, live=True, timeout=timeout)
        self.windows, self.paced, self.on_frame = windows, paced, on_frame
        self.cond = threading.Condition()
        self.pending: Optional[Pending] = None
        self.ended, self.drops, self.error = False, 0, ''
        self.stopping = threading.Event()
        self.last_frame_at = time.perf_counter()

    def run(self) -> None:
        start: Optional[float] = None
        try:
            for frame in self.stream:
                if self.stopping.is_set():
                    break
                if self.paced:  # a file: frames at their own times, as a camera would give them
                    start = time.perf_counter() - frame.time if start is None else start
                    if self.stopping.wait(max(0.0, start + frame.time - time.perf_counter())):
                        break
                self.last_frame_at = time.perf_counter()
                for window in self.windows.push(frame.index, frame.time, frame.clip, 1.0 / self.stream.fps):
                    self._offer(window)
                if self.on_frame is not None:
                    self.on_frame(frame, self.stream.fps)
            last = None if self.stopping.is_set() else self.windows.finish()
            if last is not None:  # the stream ended mid-window: what it had, loop-padded
                self._offer(last)
        except Exception as e:  # noqa: BLE001 - the source's own error, reported by the main thread
            self.error = getattr(e, 'strerror', None) or f'{type(e).__name__}: {e}'
        finally:
            with self.cond:
                self.ended = True
                self.cond.notify_all()

    def _offer(self, window: Window) -> None:
        with self.cond:
            if self.pending is not None:
                self.drops += 1
            self.pending = Pending(window, time.perf_counter())
            self.cond.notify_all()

    def take(self, wait: float) -> Optional[Pending]:
        """The window waiting (None after ``wait`` seconds without one)."""
        with self.cond:
            if self.pending is None and not self.ended:
                self.cond.wait(wait)
            pending, self.pending = self.pending, None
            return pending


class LabelledWriter:
    """``--annotate`` for a stream: frames with the latest top label, encoded by a thread of their own."""

    def __init__(self, out: Path):
        self.out, self.label = out, ''
        self.frames: 'queue.Queue[Optional[np.ndarray]]' = queue.Queue(maxsize=64)
        self.thread: Optional[threading.Thread] = None
        self.count = 0

    def add(self, frame: Frame, fps: float) -> None:
        """Queue one frame (RGB, even sides) with the current label drawn on it; starts the encoder at the first."""
        from visuals.overlay import draw_lines
        rgb = decoded(frame.clip)[:, 0].permute(1, 2, 0).numpy()
        rgb = np.ascontiguousarray(rgb[:rgb.shape[0] // 2 * 2, :rgb.shape[1] // 2 * 2])
        if self.thread is None:
            self.thread = threading.Thread(target=self._encode, args=(fps,), daemon=True)
            self.thread.start()
        self.frames.put(draw_lines(rgb, [self.label]) if self.label else rgb)

    def _encode(self, fps: float) -> None:
        from fractions import Fraction

        from common.atomic import atomic_path
        from conversion.writers import encode_video

        def frames() -> Iterator[np.ndarray]:
            while (frame := self.frames.get()) is not None:
                yield frame
        self.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.out) as tmp:
            self.count = encode_video(tmp, frames(), 'libx264', Fraction(fps).limit_denominator(1001), {'crf': '20'},
                                      container_format='mp4')

    def close(self) -> None:
        """Finish the file (nothing is written when no frame came)."""
        if self.thread is not None:
            self.frames.put(None)
            self.thread.join()


def summary(windows: int, drops: int, latencies: Sequence[float], model_s: float, stream_s: float,
            ended: str) -> str:
    """The one summary line."""
    mean = float(np.mean(latencies)) if latencies else 0.0
    p95 = float(np.percentile(latencies, 95)) if latencies else 0.0
    rtf = model_s / stream_s if stream_s > 0 else 0.0
    return (f'live: {windows} windows, {drops} dropped, latency mean {mean:.0f} ms, p95 {p95:.0f} ms, '
            f'real-time factor {rtf:.2f} ({model_s:.1f} s of model for {stream_s:.1f} s of stream); {ended}')


def run_live(args: Any, model: nn.Module, prep: Any, names: Sequence[str], device: torch.device, math: Any,
             multilabel: bool, out: Any = sys.stdout) -> int:
    """``--live``: the stream scored window by window until it ends, stalls or is stopped; the exit code."""
    source = str(args.live)
    stride = args.inference_stride or None
    windows = ClipWindows.for_checkpoint(prep, stride)
    writer = LabelledWriter(args.annotate) if args.annotate else None
    reader = LiveReader(source, windows, paced=not is_stream(source), timeout=args.live_timeout,
                        on_frame=writer.add if writer else None)
    normalize = normalization(prep)
    recent: Deque[np.ndarray] = deque(maxlen=args.live_smooth)
    latencies: List[float] = []
    model_s, ended = 0.0, 'the stream ended'
    model.eval()
    with StopSignals() as stop:
        reader.start()
        while True:
            item = reader.take(0.1)
            if stop.signum is not None:
                ended = f'stopped by signal {stop.signum}'
                break
            if item is None:
                if reader.ended:
                    break
                if time.perf_counter() - reader.last_frame_at > args.live_timeout:
                    ended = f'no frame for {args.live_timeout:g} s: the stream stalled'
                    break
                continue
            begun = time.perf_counter()
            recent.append(score_clips(model, [item.window], device, normalize, amp_dtype=math.dtype,
                                      channels_last=math.channels_last, multilabel=multilabel)[0])
            model_s += time.perf_counter() - begun
            scores = np.mean(recent, axis=0)
            order = top_classes(scores, args.output_topk)
            if writer is not None:
                writer.label = f'{names[order[0]]} {scores[order[0]]:.2f}'
            latencies.append((time.perf_counter() - item.arrival) * 1000)
            w = item.window
            print(json.dumps({'t': round(w.t_end, 3), 'start': round(w.t_start, 3), 'end': round(w.t_end, 3),
                              'top': [[names[c], round(float(scores[c]), 4)] for c in order],
                              'latency_ms': round(latencies[-1], 1)}), file=out, flush=True)
        reader.stopping.set()
        reader.join(timeout=2.0)
    if reader.error and not reader.stream.opened:
        print(f'error: {source}: cannot open: {reader.error}', file=sys.stderr)
        return 2
    if reader.error or reader.stream.warning:
        ended = f'the stream ended on an error: {reader.error or reader.stream.warning}'
    if writer is not None:
        writer.close()
        print(f'{source}: {writer.count} frames annotated -> {args.annotate}', file=sys.stderr)
    stream_s = windows.end_time() if windows.frames else 0.0
    print(summary(len(latencies), reader.drops, latencies, model_s, stream_s, ended), file=sys.stderr, flush=True)
    return 0
