"""Predict the actions in video files with an exported model: numpy, PyAV and ONNX Runtime only.

    python MODEL_predict.py VIDEO [VIDEO ...] [--model MODEL.onnx] [--topk 5] [--stride N]

``util_scripts.export_model`` copies this file next to ``MODEL.onnx`` as ``MODEL_predict.py``,
with ``MODEL.preprocessing.json``: the checkpoint's preprocessing, class names and score
function. It needs none of the framework. Each video is decoded with PyAV, every
``sample_t_stride``-th frame scaled (short side to ``inference_short_side``, else
``sample_size``) and cut into the recorded views (centre crop, whole frame, or three crops
along the long side; flipped too with ``inference_flip``), the clips taken as ``inference.py``
takes them (a sliding window of ``sample_duration`` frames every ``--stride`` frames of the
video, one clip span by default, the last window loop-padded; or ``inference_clips`` clips
spaced evenly), normalised, scored, and the scores averaged over views and clips. It prints
one line per video as ``inference.py`` does: ``VIDEO: label score, label score, ...``.
Frames are scaled by FFmpeg here, so the scores differ from ``inference.py``'s in the third
decimal; the labels and their order agree.
"""
import argparse
import json
import sys
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort


def frames_of(path, short_side, t_stride):
    """Every ``t_stride``-th frame of the video, RGB uint8 H x W x 3, the short side scaled to ``short_side``."""
    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for i, frame in enumerate(container.decode(stream)):
            if i % t_stride:
                continue
            h, w = frame.height, frame.width
            size = (short_side, int(short_side * w / h)) if h <= w else (int(short_side * h / w), short_side)
            out.append(frame.reformat(width=size[1], height=size[0], format='rgb24',
                                      interpolation='AREA').to_ndarray())
    if not out:
        raise ValueError('no frame decoded')
    return np.stack(out)


def clip_starts(n, duration, stride, uniform):
    """The first frames (of the subsampled video) of its clips: a sliding window or ``uniform`` even clips."""
    if uniform > 0:
        span = max(0, n - duration) + 1
        return [int(span * (i + 0.5) / uniform) for i in range(uniform)]
    starts = []
    for start in range(0, n, stride):
        starts.append(start)
        if start + duration > n:  # the first window past the end is padded, and the last
            break
    return starts


def padded(frames, start, duration):
    """``duration`` frames from ``start``, repeated from ``start`` where the video ends first."""
    index = list(range(start, min(start + duration, len(frames))))
    index = (index * (duration // len(index) + 1))[:duration]
    return frames[index]


def views(clip, size, crop, flip):
    """The recorded spatial views of a T x H x W x 3 clip, each T x size x size x 3 (or the whole frame)."""
    h, w = clip.shape[1:3]
    if crop == 'nocrop':
        boxes = [(0, 0, h, w)]
    else:
        across = (int(round((h - size) / 2.0)), int(round((w - size) / 2.0)))
        positions = ['start', 'center', 'end'] if crop == 'three' else ['center']
        boxes = []
        for p in positions:
            along = {'start': 0, 'center': None, 'end': (max(h, w) - size)}[p]
            top, left = across if along is None else ((along, across[1]) if h > w else (across[0], along))
            boxes.append((top, left, size, size))
    out = []
    for top, left, bh, bw in boxes:
        view = clip[:, top:top + bh, left:left + bw]
        out += [view, view[:, :, ::-1]] if flip else [view]
    return out


def main(argv=None):
    here = Path(__file__).resolve()
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('videos', nargs='+')
    parser.add_argument('--model', default=str(here.with_name(here.name.replace('_predict.py', '.onnx'))))
    parser.add_argument('--topk', type=int, default=5, help='labels per video; <= 0: all')
    parser.add_argument('--stride', type=int, default=0, help='window stride in frames of the video; 0: a clip span')
    args = parser.parse_args(argv)
    model = Path(args.model)
    meta = json.loads(model.with_suffix('.preprocessing.json').read_text())
    p, names = meta['preprocessing'], meta['class_names']
    session = ort.InferenceSession(str(model), providers=['CPUExecutionProvider'])
    mean, std = np.array(p['mean'], np.float32), np.array(p['std'], np.float32)
    duration, t_stride = p['sample_duration'], p['sample_t_stride']
    stride = max(1, (args.stride or duration * t_stride) // t_stride)
    failed = 0
    for video in args.videos:
        try:
            frames = frames_of(video, p['inference_short_side'] or p['sample_size'], t_stride)
        except (OSError, ValueError, av.FFmpegError) as e:
            print(f'{video}: error: {e}', file=sys.stderr)
            failed += 1
            continue
        scores = []
        for start in clip_starts(len(frames), duration, stride, p['inference_clips']):
            clip = padded(frames, start, duration)
            batch = [((v / 255.0 * p['value_scale'] - mean) / std).transpose(3, 0, 1, 2)
                     for v in views(clip, p['sample_size'], p['inference_crop'], p['inference_flip'])]
            logits = session.run(None, {'clip': np.stack(batch).astype(np.float32)})[0].astype(np.float64)
            if meta['multilabel']:
                probs = 1 / (1 + np.exp(-logits))
            else:
                probs = np.exp(logits - logits.max(1, keepdims=True))
                probs /= probs.sum(1, keepdims=True)
            scores.append(probs.mean(0))
        mean_scores = np.mean(scores, axis=0)
        k = len(names) if args.topk <= 0 else min(args.topk, len(names))
        order = np.argsort(-mean_scores, kind='stable')[:k]
        print(f'{video}: ' + ', '.join(f'{names[c]} {mean_scores[c]:.3f}' for c in order))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
