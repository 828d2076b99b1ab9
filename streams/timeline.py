"""What happens when in a video: a model over its whole length, window by window, frames streamed.

``video_timeline`` decodes the video once (``streams.frames``), makes the checkpoint's clips as
the frames arrive (``streams.windows``: the sliding window of ``inference.py``, whatever
multi-clip protocol the checkpoint records), scores them in batches and returns the timeline:
the windows in time order with their scores and the segments ``streams.segments`` makes of
them. Memory holds one clip's frames, one batch of clips and the scores (W x classes floats),
whatever the video's length.
"""
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common.errors import UserError
from datasets.formats.live_sources import is_stream
from evaluation.metrics import top_classes
from models.precision import autocast
from preprocessing import to_device
from streams.frames import FrameStream
from streams.segments import Segment, segments
from streams.windows import ClipWindows, Window


def add_timeline_args(parser: Any) -> None:
    """``--timeline``, ``--timeline_smooth`` and ``--timeline_min_segment`` for ``inference.py``."""
    from common.cli import POSITIVE, float_in
    parser.add_argument('--timeline', type=Path, default=None, metavar='OUT_DIR',
                        help='write OUT_DIR/<name>.timeline.json and .timeline.png per video: scores window by window '
                             'and labelled segments, frames streamed (memory flat whatever the length)')
    parser.add_argument('--timeline_smooth', type=POSITIVE, default=1,
                        help='segments from scores averaged over this many windows (centred)')
    parser.add_argument('--timeline_min_segment', type=float_in(0), default=0.0,
                        help='seconds: a shorter segment takes its better-scoring neighbour\'s label')


@dataclass
class Timeline:
    """A video's windows (frames and seconds, W x C scores) and its segments."""
    video: str
    fps: float
    duration: float
    frames: int
    window_frames: int
    window_stride: int
    starts: List[float] = field(default_factory=list)
    ends: List[float] = field(default_factory=list)
    first_frames: List[int] = field(default_factory=list)
    end_frames: List[int] = field(default_factory=list)
    sampled: List[tuple] = field(default_factory=list)  # (first, one past the last) frame each window samples
    scores: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    segments: List[Segment] = field(default_factory=list)
    warning: str = ''
    peak_frames: int = 0  # the most frames held at once (one clip's at most)

    def segment_frames(self) -> List[tuple]:
        """(first frame, end frame, label) of each segment: its windows' shares of the frames, as of the seconds."""
        centres = [(a + b) / 2 for a, b in zip(self.first_frames, self.end_frames)]
        bounds = [0] + [int(round((a + b) / 2)) for a, b in zip(centres, centres[1:])] + [self.frames]
        return [(bounds[s.first], bounds[s.last + 1], s.label) for s in self.segments]

    def clip_scores(self) -> List[tuple]:
        """The windows as inference's clips: ((first frame, one past the last sampled), scores tensor)."""
        return [(seg, torch.from_numpy(p.copy())) for seg, p in zip(self.sampled, self.scores)]

    def to_json(self, names: Sequence[str], topk: int = 5) -> Dict[str, Any]:
        """The timeline JSON: the video, its rate and duration, the window, the windows' top-k scores, the segments."""
        windows = []
        for a, b, p in zip(self.starts, self.ends, self.scores):
            order = top_classes(p, topk)
            windows.append({'start': round(a, 3), 'end': round(b, 3),
                            'scores': {names[c]: round(float(p[c]), 4) for c in order}})
        return {'video': self.video, 'fps': self.fps, 'duration': round(self.duration, 3),
                'window': {'frames': self.window_frames, 'stride': self.window_stride}, 'windows': windows,
                'segments': [{'start': round(s.start, 3), 'end': round(s.end, 3), 'label': names[s.label],
                              'score': round(s.score, 4)} for s in self.segments]}


def score_clips(model: nn.Module, windows: List[Window], device: torch.device, normalize: Callable, *,
                amp_dtype: Optional[torch.dtype], channels_last: bool, multilabel: bool) -> np.ndarray:
    """B x C softmax (sigmoid) scores of a batch of windows, their views averaged."""
    clips = torch.stack([w.clip for w in windows])
    views = clips.shape[1] if clips.dim() == 6 else 1
    with torch.inference_mode(), autocast(device, amp_dtype):
        logits = model(to_device(clips.flatten(0, 1) if views > 1 else clips, device, normalize, channels_last))
    probs = torch.sigmoid(logits.float()) if multilabel else F.softmax(logits.float(), dim=1)
    return probs.unflatten(0, (len(windows), views)).mean(1).cpu().numpy()


def video_timeline(path: Path, model: nn.Module, prep: Any, device: torch.device, normalize: Callable, *,
                   stride: Optional[int] = None, batch_size: int = 16, amp_dtype: Optional[torch.dtype] = None,
                   channels_last: bool = False, multilabel: bool = False, smooth: int = 1,
                   min_length: float = 0.0) -> Timeline:
    """The timeline of one video file (``UserError`` naming it when no frame decodes)."""
    span = prep.sample_duration * prep.sample_t_stride
    windows = ClipWindows.for_checkpoint(prep, stride)
    stream = FrameStream(path, live=not isinstance(path, Path) or is_stream(str(path)))
    model.eval()
    done: List[Window] = []
    scored: List[np.ndarray] = []
    out = Timeline(str(path), 0.0, 0.0, 0, span, stride or span)

    def flush(batch: List[Window]) -> None:
        scored.append(score_clips(model, batch, device, normalize, amp_dtype=amp_dtype,
                                  channels_last=channels_last, multilabel=multilabel))
        for w in batch:
            out.starts.append(w.t_start), out.ends.append(w.t_end)
            out.first_frames.append(w.start), out.end_frames.append(w.end), out.sampled.append((w.start, w.sampled_end))

    for frame in stream:
        done += windows.push(frame.index, frame.time, frame.clip, 1.0 / stream.fps)
        if len(done) >= batch_size:
            flush(done[:batch_size])
            done = done[batch_size:]
    last = windows.finish()
    done += [last] if last is not None else []
    for first in range(0, len(done), batch_size):
        flush(done[first:first + batch_size])
    if stream.count == 0:
        raise UserError(f"{path}: no frames decoded{': ' + stream.warning if stream.warning else ''}")
    out.fps, out.frames, out.duration = stream.fps, stream.count, windows.end_time()
    out.ends = [min(e, out.duration) for e in out.ends]
    out.end_frames = [min(e, out.frames) for e in out.end_frames]
    out.scores = np.concatenate(scored) if scored else np.zeros((0, 0), np.float32)
    broken = int((~np.isfinite(out.scores).all(axis=1)).sum()) if len(out.scores) else 0
    if broken:  # as the results JSON leaves such a video out: no NaN in a JSON file, no segment made of one
        raise UserError(f'{path}: the model gave non-finite scores for {broken} of {len(out.scores)} windows: '
                        'no timeline written')
    out.segments = segments(out.scores, out.starts, out.ends, out.duration, smooth, min_length)
    out.warning, out.peak_frames = stream.warning, windows.peak
    return out


def timeline_paths(out_dir: Path, key: str) -> tuple:
    """(``OUT/<key without suffix>.timeline.json``, ``.timeline.png``): the folders of the key kept."""
    stem = Path(key).with_suffix('')
    return out_dir / f'{stem}.timeline.json', out_dir / f'{stem}.timeline.png'


def write_timeline(timeline: Timeline, out_dir: Path, key: str, names: Sequence[str], topk: int) -> tuple:
    """Write a video's timeline JSON and PNG under ``out_dir`` (atomically); their paths."""
    from common.atomic import atomic_write_json
    from visuals.timeline import clock, write_timeline_png
    json_path, png_path = timeline_paths(out_dir, key)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(json_path, timeline.to_json(names, topk))
    title = (f'{key}: {clock(timeline.duration)}, {len(timeline.starts)} windows of {timeline.window_frames} '
             f'frames every {timeline.window_stride}, {len(timeline.segments)} segments')
    write_timeline_png(png_path, list(zip(timeline.starts, timeline.ends)), timeline.scores,
                       [(s.start, s.end, s.label) for s in timeline.segments], names, timeline.duration, title)
    return json_path, png_path


def run_timelines(args: Any, keys: Dict[Path, str], model: nn.Module, prep: Any, names: Sequence[str],
                  device: torch.device, math: Any, multilabel: bool) -> Tuple[Dict[str, list], int]:
    """``inference.py --timeline``: each video streamed through the model and its timeline written (and with
    ``--annotate`` the video with its segments); (the windows as clip scores per video key, the videos failed)."""
    from datasets.formats.video_files import UNREADABLE
    from preprocessing import normalization
    from visuals.annotate import annotate_segments
    scores: Dict[str, list] = {}
    failed = 0
    for path in args.videos:
        try:
            timeline = video_timeline(path, model, prep, device, normalization(prep),
                                      stride=args.inference_stride or None, batch_size=args.batch_size,
                                      amp_dtype=math.dtype, channels_last=math.channels_last, multilabel=multilabel,
                                      smooth=args.timeline_smooth, min_length=args.timeline_min_segment)
            if timeline.warning:
                print(f'warning: {path}: {timeline.warning}', file=sys.stderr)
            json_path, png_path = write_timeline(timeline, args.timeline, keys[path], names, args.output_topk)
            scores[keys[path]] = timeline.clip_scores()
            shown = ', '.join(f'{names[s.label]} {s.start:.1f}-{s.end:.1f} s' for s in timeline.segments[:4])
            more = f' (+{len(timeline.segments) - 4} more)' if len(timeline.segments) > 4 else ''
            print(f'{path}: {len(timeline.starts)} windows, {len(timeline.segments)} segments: {shown}{more} -> '
                  f'{json_path}, {png_path.name}')
            if args.annotate:
                out = args.annotate if len(args.videos) == 1 and args.annotate.suffix else \
                    args.annotate / f'{keys[path]}.mp4'
                n = annotate_segments(path, out, timeline.segment_frames(), names)
                print(f'{path}: {n} frames annotated with their segment -> {out}')
        except UserError as e:
            print(f'error: {e}', file=sys.stderr)
            failed += 1
        except UNREADABLE as e:  # not a video, unreadable, a folder that cannot be written
            print(f'{path}: error: {e}', file=sys.stderr)
            failed += 1
    return scores, failed
