"""Video-level inference: sliding-window clips, softmax averaged per video, the original's JSON.

Multi-label models (``--multilabel``) give per-label sigmoid scores instead, averaged the same way.

Used by ``main.py --inference`` on an annotated subset, and runnable on any video files:

    python inference.py VIDEO [VIDEO ...] --resume_path CKPT [--output_topk 5] [--no_cuda]
                        [--features OUT.hdf5|OUT_DIR] [--inference_stride 16] [--batch_size 32]

which decodes the files directly (PyAV), takes the class names, normalisation and clip size
from the checkpoint, and prints the top-k labels per file. ``--features`` saves the pooled
pre-classifier features of every clip and their per-video mean (one .hdf5 file, or .npy
files in a folder).
"""
import argparse
import os
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from training import autocast, to_device
from datasets.formats.atomic import atomic_write_json

ClipScores = Dict[str, List[Tuple[Tuple[int, int], torch.Tensor]]]  # id -> [(segment, softmax)]


@torch.no_grad()
def infer(loader: Iterable[Dict[str, Any]], model: nn.Module, device: torch.device, normalize: Callable, *,
          amp_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
          show_progress: bool = True, multilabel: bool = False) -> Tuple[ClipScores, Dict[str, int]]:
    """Softmax (multi-label: per-label sigmoid) scores of every clip, grouped by video, and the fault counts."""
    model.eval()
    scores: ClipScores = {}
    faults = {'bad_frames': 0, 'failed_videos': 0}
    for batch in tqdm(loader, desc='inference', disable=not show_progress, dynamic_ncols=True, leave=False):
        faults['bad_frames'] += batch['bad_frames']
        faults['failed_videos'] += len(batch['failed'])
        if batch['clip'] is None:
            continue
        x = to_device(batch['clip'], device, normalize, channels_last)
        with autocast(device, amp_dtype):
            logits = model(x).float()
        probs = (torch.sigmoid(logits) if multilabel else F.softmax(logits, dim=1)).cpu()
        for vid, segment, p in zip(batch['video_id'], batch['segment'], probs):
            scores.setdefault(vid, []).append((tuple(segment), p))
    return scores, faults


def _ranked(probs: torch.Tensor, class_names: Sequence[str], topk: int) -> List[Dict[str, Any]]:
    k = len(class_names) if topk <= 0 else min(topk, len(class_names))
    values, indices = probs.topk(k)
    return [{'label': class_names[i], 'score': float(v)} for v, i in zip(values.tolist(), indices.tolist())]


def results_json(scores: ClipScores, class_names: Sequence[str], topk: int = 5,
                 average: bool = True) -> Dict[str, Any]:
    """The original's inference JSON: per video the top-k of the mean clip softmax, or per segment.

    ``topk`` <= 0 lists every class (of the model's own head: the fine-tuned one).
    """
    out: Dict[str, Any] = {}
    for vid, clips in scores.items():
        clips = sorted(clips, key=lambda c: c[0])
        if average:
            out[vid] = _ranked(torch.stack([p for _, p in clips]).mean(0), class_names, topk)
        else:
            out[vid] = [{'segment': list(seg), 'result': _ranked(p, class_names, topk)} for seg, p in clips]
    return {'results': out}


def write_json(path: Path, data: Any) -> Path:
    """Write JSON atomically (temp file beside it, fsync, rename)."""
    return atomic_write_json(path, data)


# ----------------------------------------------------------------------------- any video file

def _video_clips(path: Path, loader: Any, duration: int, stride: int, transform: Callable
                 ) -> Iterable[Tuple[Tuple[int, int], torch.Tensor]]:
    """(segment, C x T x H x W uint8 clip) for the sliding windows of one video file."""
    import temporal_transforms as tt
    n = len(loader.index(path))
    for window in tt.SlidingWindow(duration, stride)(list(range(n))):
        frames, _ = loader(path, window)
        yield (min(window), max(window) + 1), transform(frames.transpose(0, 1))


def _save_features(target: Path, features: Dict[str, Tuple[torch.Tensor, List[Tuple[int, int]]]]) -> None:
    if target.suffix in ('.hdf5', '.h5'):
        import h5py
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f'.{target.name}.tmp')
        with h5py.File(tmp, 'w') as f:
            for name, (clips, segments) in features.items():
                g = f.create_group(name)
                g['clips'] = clips.numpy()
                g['video'] = clips.mean(0).numpy()
                g['segments'] = torch.tensor(segments).numpy()
        os.replace(tmp, target)
    else:
        import numpy as np
        target.mkdir(parents=True, exist_ok=True)
        for name, (clips, segments) in features.items():
            np.save(target / f'{name}_clips.npy', clips.numpy())
            np.save(target / f'{name}.npy', clips.mean(0).numpy())


def predict(argv: Optional[List[str]] = None) -> int:
    """CLI: top-k labels (and optionally features) for video files, from a checkpoint."""
    from datasets import VideoLoader, VideoReadError
    from models import CheckpointError, load_checkpoint, load_model
    import spatial_transforms as st

    parser = argparse.ArgumentParser(description='Predict the actions in video files with a checkpoint')
    parser.add_argument('videos', type=Path, nargs='+')
    parser.add_argument('--resume_path', type=Path, required=True, help='checkpoint to use')
    parser.add_argument('--output_topk', type=int, default=5)
    parser.add_argument('--inference_stride', type=int, default=0, help='window stride; 0: sample_duration')
    parser.add_argument('--batch_size', type=int, default=16, help='clips per forward pass')
    parser.add_argument('--annotation_path', type=Path, default=None,
                        help='class names from this annotation file, for checkpoints that carry none')
    parser.add_argument('--features', type=Path, default=None, help='save features to OUT.hdf5 or a folder')
    parser.add_argument('--no_cuda', action='store_true')
    args = parser.parse_args(argv)
    try:
        ckpt = load_checkpoint(args.resume_path)
        model = load_model(args.resume_path)
    except CheckpointError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    names = ckpt.get('class_names')
    if not names and args.annotation_path:
        from datasets.annotations import file_labels
        from util_scripts.annotation_utils import read_annotation_json
        names = file_labels(args.annotation_path, read_annotation_json(args.annotation_path))
    n_out = model.fc.out_features if hasattr(model, 'fc') else model.classifier.out_features
    if not names or len(names) != n_out:
        print(f'error: {args.resume_path}: no class names for its {n_out} outputs: pass --annotation_path',
              file=sys.stderr)
        return 2
    device = torch.device('cuda' if torch.cuda.is_available() and not args.no_cuda else 'cpu')
    model.to(device)
    size, duration = ckpt.get('sample_size') or 112, ckpt.get('sample_duration') or 16
    mean, std = ckpt.get('mean'), ckpt.get('std')
    if mean is None or std is None:
        print('warning: the checkpoint records no normalisation: using the Kinetics mean/std', file=sys.stderr)
        mean, std = st.get_mean_std()
    normalize = st.ClipNormalize(mean, std, ckpt.get('value_scale') or 1)
    transform = st.Compose([st.Resize(size), st.CenterCrop(size), st.YUVToRGB()])
    loader = VideoLoader(yuv=True)
    multilabel = bool(ckpt.get('multilabel'))  # trained with --multilabel: independent per-label scores
    features: Dict[str, Tuple[torch.Tensor, List[Tuple[int, int]]]] = {}
    status = 0
    for path in args.videos:
        try:
            clips = list(_video_clips(path, loader, duration, args.inference_stride or duration, transform))
        except VideoReadError as e:
            print(f'{path}: error: {e}', file=sys.stderr)
            status = 1
            continue
        probs, feats = [], []
        with torch.no_grad():
            for i in range(0, len(clips), args.batch_size):
                x = to_device(torch.stack([c for _, c in clips[i:i + args.batch_size]]), device, normalize)
                f = model.forward_features(x)
                head = model.fc if hasattr(model, 'fc') else model.classifier
                logits = head(f).float()
                probs.append((torch.sigmoid(logits) if multilabel else F.softmax(logits, 1)).cpu())
                feats.append(f.float().cpu())
        ranked = _ranked(torch.cat(probs).mean(0), names, args.output_topk)
        print(f'{path}: ' + ', '.join(f"{r['label']} {r['score']:.3f}" for r in ranked))
        features[path.stem] = (torch.cat(feats), [s for s, _ in clips])
    if args.features and features:
        _save_features(args.features, features)
        print(f'features of {len(features)} videos saved to {args.features}')
    return status


if __name__ == '__main__':
    sys.exit(predict())
