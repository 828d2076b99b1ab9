"""What the model predicts and where it looks: the annotated video and the examples contact sheet.

``inference.py VIDEO --resume_path CKPT --annotate OUT.mp4 [--cam]`` writes the video back as
H.264 (yuv420p, even sides, the source's frame rate and frame count) with the top-k labels
of the window each frame belongs to drawn on it; ``--cam`` blends in the Grad-CAM of the
window's top class (``visuals.cam``), upsampled in time and space over the part of the frame
the model saw (the centre square, or all of it with ``inference_crop`` nocrop): always one
view per window, the original's sliding window, whatever multi-view protocol is recorded.
``main.py --inference`` on a labelled subset writes ``<subset>_examples.png``: a few right and
a few wrong videos, frames read by the subset's own loader (any ``--file_type``).
"""
import bisect
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from common.errors import UserError
from visuals.overlay import Box, blend_heat, draw_lines

MAX_LINES = 5  # labels drawn on a frame at most


@dataclass
class Window:
    """One sliding window: its frames [start, end) of the video, its scores and its heat maps (T x H x W)."""
    start: int
    end: int
    scores: np.ndarray
    heat: Optional[np.ndarray] = None


def add_annotate_args(parser: Any) -> None:
    """``--annotate`` and ``--cam`` for ``inference.py``."""
    parser.add_argument('--annotate', type=Path, default=None,
                        help='write the video with the top-k of each window drawn on it (OUT.mp4; '
                             'a folder for several videos)')
    parser.add_argument('--cam', action='store_true', help="with --annotate: blend in the Grad-CAM heat "
                                                           "map of each window's top class")


def score_windows(model: nn.Module, clips: torch.Tensor, segments: Sequence[Tuple[int, int]], normalize: Any,
                  device: torch.device, batch_size: int, multilabel: bool, cam: bool) -> List[Window]:
    """Scores (and with ``cam`` the Grad-CAM maps, at the clip's T x H x W) of every clip of a video."""
    from preprocessing import to_device
    from visuals.cam import cam_layer, grad_cam, upsample
    model.eval()
    layer = cam_layer(model, to_device(clips[:1], device, normalize)) if cam else None
    windows = []
    for first in range(0, len(clips), batch_size):
        x = to_device(clips[first:first + batch_size], device, normalize)
        if layer is None:
            with torch.no_grad():
                logits, maps = model(x).float(), None
        else:
            logits, maps = grad_cam(model, layer, x)
            maps = upsample(maps, tuple(x.shape[2:])).cpu().numpy()
        probs = (torch.sigmoid(logits) if multilabel else F.softmax(logits, dim=1)).cpu().numpy()
        for i, (start, end) in enumerate(segments[first:first + len(x)]):
            windows.append(Window(start, end, probs[i], None if maps is None else maps[i]))
    return sorted(windows, key=lambda w: w.start)


def view_box(height: int, width: int, crop: str) -> Box:
    """The part of a frame the model saw: the centre square of the short side, or all of it (nocrop)."""
    if crop == 'nocrop':
        return 0, 0, height, width
    side = min(height, width)
    return (height - side) // 2, (width - side) // 2, side, side


def annotated_frames(frames: Iterator[np.ndarray], windows: Sequence[Window], names: Sequence[str], topk: int,
                     crop: str) -> Iterator[np.ndarray]:
    """Each frame with its window's top-k labels (and its heat map where the windows carry one)."""
    starts = [w.start for w in windows]
    k = min(topk if topk > 0 else len(names), len(names), MAX_LINES)
    for i, frame in enumerate(frames):
        w = windows[max(0, bisect.bisect_right(starts, i) - 1)]
        order = np.argsort(-w.scores, kind='stable')[:k]
        lines = [f'{w.scores[c]:.2f} {names[c]}' for c in order]
        if w.heat is not None:
            t = min(len(w.heat) - 1, max(0, (i - w.start) * len(w.heat) // max(1, w.end - w.start)))
            frame = blend_heat(frame, w.heat[t], view_box(frame.shape[0], frame.shape[1], crop))
        yield draw_lines(frame, lines)


def annotate_video(src: Path, out: Path, model: nn.Module, prep: Any, names: Sequence[str], device: torch.device,
                   *, stride: Optional[int], topk: int, cam: bool, multilabel: bool, batch_size: int) -> int:
    """Write ``src`` annotated to ``out`` (H.264 mp4, atomically); returns the frames written."""
    import itertools

    from common.atomic import atomic_path
    from conversion.frames import FrameReader
    from conversion.writers import encode_video
    from datasets.build import file_dataset
    from datasets.formats.video_files import open_video, video_stream
    from preprocessing import normalization

    crop = prep.inference_crop if prep.inference_crop in ('center', 'nocrop') else 'center'
    one_view = dict(inference_crop=crop, inference_clips=0, inference_short_side=0, inference_flip=False)
    prep = replace(prep, **one_view)  # the sliding window
    data, failed = file_dataset([src], {src: src.name}, prep, stride, multilabel)
    sample = data[0] if not failed else {'failed': failed[0][1]}
    if 'failed' in sample:
        raise UserError(f"{src}: cannot annotate: {sample['failed']}")
    windows = score_windows(model, sample['clips'], sample['segments'], normalization(prep), device,
                            batch_size, multilabel, cam)
    with open_video(src) as container:
        stream = video_stream(container)
        short = min(stream.codec_context.width, stream.codec_context.height)
    reader = FrameReader(src, short, even=True)
    frames = iter(reader)
    first = next(frames)  # the source's rate is known once decoding has started
    with atomic_path(out) as tmp:
        n = encode_video(tmp, annotated_frames(itertools.chain([first], frames), windows, names, topk, crop),
                         'libx264', reader.rate, {'crf': '18'}, container_format='mp4')
    return n


def annotate_segments(src: Path, out: Path, segments: Sequence[Tuple[int, int, int]], names: Sequence[str]) -> int:
    """Write ``src`` to ``out`` (H.264 mp4, atomically) with the label of the segment (first frame, end frame,
    class) each frame is in drawn on it, frames streamed; returns the frames written."""
    import itertools

    from common.atomic import atomic_path
    from conversion.frames import FrameReader
    from conversion.writers import encode_video
    from datasets.formats.video_files import open_video, video_stream

    if out.resolve() == Path(src).resolve():
        raise UserError(f'{src}: --annotate would write over the video itself; choose another name')
    with open_video(src) as container:
        stream = video_stream(container)
        short = min(stream.codec_context.width, stream.codec_context.height)
    ends = [end for _, end, _ in segments]

    def labelled(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for i, frame in enumerate(frames):
            k = min(bisect.bisect_right(ends, i), len(segments) - 1)
            yield draw_lines(frame, [names[segments[k][2]]]) if segments else frame

    reader = FrameReader(src, short, even=True)
    frames = iter(reader)
    first = next(frames)  # the source's rate is known once decoding has started
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        return encode_video(tmp, labelled(itertools.chain([first], frames)), 'libx264', reader.rate, {'crf': '18'},
                            container_format='mp4')


def annotate_files(paths: Sequence[Path], keys: Dict[Path, str], args: Any, model: nn.Module, prep: Any,
                   names: Sequence[str], device: torch.device, multilabel: bool) -> List[Tuple[Path, str]]:
    """``--annotate`` for every file of ``paths`` (a file for one, ``OUT/<key>.mp4`` for several); the failures."""
    if args.annotate is None:
        raise UserError('--cam draws on the annotated video: pass --annotate OUT.mp4 as well')
    failed = []
    for path in paths:
        out = args.annotate if len(paths) == 1 and args.annotate.suffix else args.annotate / f'{keys[path]}.mp4'
        try:
            if out.resolve() == path.resolve():
                raise UserError(f'{path}: --annotate would write over the video itself; choose another name')
            n = annotate_video(path, out, model, prep, names, device, stride=args.inference_stride or None,
                               topk=args.output_topk, cam=args.cam, multilabel=multilabel,
                               batch_size=args.batch_size)
            print(f'{path}: {n} frames annotated -> {out}')
        except UserError as e:
            print(f'error: {e}', file=sys.stderr)
            failed.append((path, str(e)))
    return failed


def strip(loader: Any, record: Any, n_frames: int) -> List[np.ndarray]:
    """``n_frames`` evenly spaced frames of a video (H x W x 3 uint8, about the sheet's thumbnail size)."""
    from datasets.decode import VideoReadError
    from spatial_transforms import Resize, is_encoded
    from visuals.sheet import THUMB_H, THUMB_W
    frames = list(record.frames)
    picks = [frames[round(j * (len(frames) - 1) / max(1, n_frames - 1))] for j in range(min(n_frames, len(frames)))]
    try:
        clip, _ = loader(record.path, picks)  # T x C x H x W, or C x T x H x W still encoded
    except VideoReadError:
        return []
    clip = clip if is_encoded(clip) else clip.transpose(0, 1)
    h, w = clip.shape[-2:]
    scale = min(THUMB_W / w, THUMB_H / h)
    clip = Resize((max(1, round(h * scale)), max(1, round(w * scale))))(clip)
    return list(clip.permute(1, 2, 3, 0).contiguous().numpy())


def write_examples(data: Any, means: Dict[str, torch.Tensor], names: Sequence[str], prep: Any,
                   path: Path, k: int = 4, n_frames: int = 6) -> Optional[Path]:
    """``path``: the contact sheet of up to ``k`` right and ``k`` wrong videos of a labelled subset (RGB only)."""
    from visuals.sheet import Example, pick_examples, write_contact_sheet
    if prep.input_type != 'rgb':
        return None
    records = {r.video_id: r for r in data.records if r.label >= 0 and r.video_id in means}
    predictions = {}
    for vid, record in records.items():
        top = int(means[vid].argmax())
        predictions[vid] = (names[record.label], names[top], float(means[vid][top]))
    right, wrong = pick_examples(predictions, k)
    rows = [[Example(vid, *predictions[vid], strip(data.loader, records[vid], n_frames))
             for vid in ids] for ids in (right, wrong)]
    n_right = sum(t == p for t, p, _ in predictions.values())
    title = f'{path.stem}: {n_right} of {len(predictions)} videos right (top-1 of the mean clip score)'
    return write_contact_sheet(path, rows[0], rows[1], title, n_frames, (n_right, len(predictions) - n_right))
