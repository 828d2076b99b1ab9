"""Validation: the original's clip-level loss and accuracy, and video-level metrics from the same pass.

Each video contributes ``--n_val_samples`` clips; its video-level prediction is the mean of
its clips' softmax scores. Video top-1/top-5 and the mean class accuracy (the mean over
classes of their top-1 recall) are what papers report; the clip accuracy is the original's
``val.log`` column.

Multi-label targets (``--multilabel``) average sigmoid scores instead, and the video-level
metrics are the mean average precision over classes and the top-k recall.

Top-5 (and recall@5) is only a measure with more than 5 classes: with 5 or fewer every video
is in it, so the metric is None and printed as ``top-5 n/a (3 classes)`` (``n/a`` in the logs).

Under distributed each rank scores its shard; ``gather_videos`` merges the ranks' per-video sums
(a video's clips may lie on several ranks), so that the video figures are those of one process.
"""
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.progress import progress
from distributed.collectives import gather_objects
from evaluation.metrics import accuracy_summary
from models.precision import autocast
from preprocessing import to_device
from runs.run_logs import top_k_text
from runs.stopping import Lockstep, fetch_batches
from training import count_hits

Label = Union[int, Tuple[int, ...]]  # a class index, or a tuple of them for multi-label
# id -> (sum of clip scores in float64, n clips, label)
VideoScores = Dict[str, Tuple[torch.Tensor, int, Label]]


@torch.no_grad()
def val_epoch(epoch: int, loader: Iterable[Dict[str, Any]], model: nn.Module, criterion: nn.Module,
              device: torch.device, normalize: Callable, *, amp_dtype: Optional[torch.dtype] = None,
              channels_last: bool = False, show_progress: bool = True,
              should_stop: Optional[Callable[[bool], bool]] = None, steps: Optional[int] = None) -> Dict[str, Any]:
    """One pass over the validation clips: clip loss/accuracy sums and per-video score sums.

    ``should_stop(worker_died)`` is asked after every batch; if it says so, the pass ends with
    ``interrupted`` set (and ``worker_died`` saying why when a DataLoader worker died here). Under
    distributed, where it is a collective (``StopSignals``), ``steps`` is the most batches of any
    rank: a rank with fewer keeps asking until then, so every rank asks as often and all stop at
    the same step when one of them is stopped or has lost a worker.
    """
    model.eval()
    loss_sum, correct, seen, bad_frames, failed = 0.0, 0, 0, 0, 0
    videos: VideoScores = {}
    batches = fetch_batches(loader)
    bar = progress(batches, total=len(loader) if hasattr(loader, '__len__') else None, desc=f'epoch {epoch} val',
                   enabled=show_progress)
    walk = Lockstep(bar, steps, should_stop)
    try:
        for batch in walk:
            if batch is None:
                continue
            bad_frames += batch['bad_frames']
            failed += len(batch['failed'])
            if batch['clip'] is not None:
                loss_sum, correct, seen = _score_batch(batch, model, criterion, device, normalize, amp_dtype,
                                                       channels_last, videos, (loss_sum, correct, seen))
            if seen:
                bar.set_postfix(loss=f'{loss_sum / seen:.3f}', acc=f'{correct / seen:.3f}')
    finally:
        batches.close()
    bar.close()
    interrupted, died = walk.interrupted, walk.died
    return {'loss_sum': loss_sum, 'correct': correct, 'clips': seen, 'videos': videos,
            'bad_frames': bad_frames, 'failed_videos': failed, 'interrupted': interrupted, 'worker_died': died}


def _score_batch(batch: Dict[str, Any], model: nn.Module, criterion: nn.Module, device: torch.device,
                 normalize: Callable, amp_dtype: Optional[torch.dtype], channels_last: bool, videos: VideoScores,
                 sums: Tuple[float, int, int]) -> Tuple[float, int, int]:
    """Add one batch's clip loss and hits to ``sums`` (returned) and its scores to ``videos``."""
    loss_sum, correct, seen = sums
    x = to_device(batch['clip'], device, normalize, channels_last)
    y = batch['label'].to(device)
    with autocast(device, amp_dtype):
        logits = model(x).float()
    multilabel = y.dim() == 2
    labelled = (y >= 0).all(1) if multilabel else y >= 0
    if labelled.any():
        loss_sum += criterion(logits[labelled], y[labelled]).item() * int(labelled.sum())
        correct += count_hits(logits[labelled], y[labelled])
        seen += int(labelled.sum())
    probs = (torch.sigmoid(logits) if multilabel else F.softmax(logits, dim=1)).cpu()
    for vid, p, label in zip(batch['video_id'], probs, video_labels(batch['label'])):
        # float64: adding a video's clips in another order (N ranks' sums, merged) changes nothing a metric sees
        total, count, kept = videos.get(vid, (torch.zeros(p.shape, dtype=torch.float64), 0, label))
        videos[vid] = (total + p.double(), count + 1, _agreed_label(kept, label))
    return loss_sum, correct, seen


def _agreed_label(kept: Label, other: Label) -> Label:
    """A video's label from two of its clips: the same one, or else the smaller.

    The segments of one video may carry different labels (ActivityNet); keeping the first or the
    last would depend on which rank scored which clip, the smaller does not.
    """
    return kept if kept == other else min(kept, other)


def merge_videos(parts: Iterable[VideoScores]) -> VideoScores:
    """Per video, the sums of its score sums and clip counts over ``parts``; videos in id order."""
    merged: VideoScores = {}
    for part in parts:
        for vid, (total, count, label) in part.items():
            if vid in merged:
                before, n, kept = merged[vid]
                merged[vid] = (before + total.double(), n + count, _agreed_label(kept, label))
            else:
                merged[vid] = (total.double(), count, label)
    return {vid: merged[vid] for vid in sorted(merged)}


def gather_videos(videos: VideoScores) -> VideoScores:
    """Every rank's per-video sums merged (``merge_videos``) on every rank; one process: its own, merged alike.

    A collective call under distributed: every rank calls it at the same point.
    """
    return merge_videos(gather_objects(videos))


def _n_classes(videos: VideoScores) -> int:
    """The number of classes the videos' scores have (0: no videos)."""
    return next(iter(videos.values()))[0].shape[-1] if videos else 0


def _top_k(value: float, k: int, n_classes: int) -> Optional[float]:
    """``value``, or None where a top-k metric means nothing: k classes or fewer (every class is in the top k)."""
    return value if n_classes > k else None


def video_metrics(videos: VideoScores) -> Dict[str, Any]:
    """Video top-1/top-5 accuracy and mean class accuracy from per-video softmax sums.

    The meaning is ``evaluation.metrics``' (as ``eval_accuracy``'s): each video's five
    best classes become its ranking. ``video_top5`` is None with 5 classes or fewer.
    """
    truth = {vid: label for vid, (_, _, label) in videos.items() if label >= 0}
    n_classes = _n_classes(videos)
    if not truth:
        return {'video_top1': 0.0, 'video_top5': _top_k(0.0, 5, n_classes), 'mean_class_acc': 0.0,
                'videos': 0, 'classes': n_classes}
    scores = torch.stack([videos[vid][0] for vid in truth])
    top = scores.topk(min(5, n_classes), dim=1)
    rankings = {vid: list(zip(indices, values))
                for vid, indices, values in zip(truth, top.indices.tolist(), top.values.tolist())}
    summary = accuracy_summary(truth, rankings)
    return {'video_top1': summary['top1'], 'video_top5': _top_k(summary['top5'], 5, n_classes),
            'mean_class_acc': summary['mean_class'], 'videos': len(truth), 'classes': n_classes}


def video_labels(y: torch.Tensor) -> List[Union[int, Tuple[int, ...]]]:
    """Per clip: the class index, or (multi-hot rows) the tuple of positive classes."""
    if y.dim() == 1:
        return y.tolist()
    return [tuple(row.nonzero().flatten().tolist()) for row in (y > 0)]


def average_precision(scores: torch.Tensor, positives: torch.Tensor) -> float:
    """Area under the precision-recall curve of one class (mean precision at each positive)."""
    order = scores.argsort(descending=True, stable=True)
    hits = positives[order].float()
    precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
    return float((precision * hits).sum() / hits.sum())


def multilabel_metrics(videos: VideoScores, ks: Sequence[int] = (1, 5)) -> Dict[str, float]:
    """mAP over the classes that have positives, and top-k recall (share of a video's labels in its top k).

    ``recall_at_k`` is None when the model has k classes or fewer (every label is in the top k).
    """
    labelled = [(total / count, label) for total, count, label in videos.values() if label]
    n_classes = _n_classes(videos)
    out: Dict[str, Any] = {'mAP': 0.0, **{f'recall_at_{k}': _top_k(0.0, k, n_classes) for k in ks},
                           'videos': len(labelled), 'classes': n_classes}
    if not labelled:
        return out
    scores = torch.stack([s for s, _ in labelled])
    truth = torch.zeros_like(scores, dtype=torch.bool)
    for row, (_, label) in enumerate(labelled):
        truth[row, list(label)] = True
    present = truth.any(0).nonzero().flatten().tolist()
    out['mAP'] = sum(average_precision(scores[:, c], truth[:, c]) for c in present) / len(present)
    for k in (k for k in ks if n_classes > k):
        top = scores.topk(min(k, scores.shape[1]), dim=1).indices
        found = truth.gather(1, top).sum(1).float()
        out[f'recall_at_{k}'] = float((found / truth.sum(1)).mean())
    return out


def score_inference(means: Dict[str, torch.Tensor], records: Sequence[Any], names: Sequence[str],
                    multilabel: bool, subset: str) -> Tuple[Dict[str, float], str]:
    """Video metrics of averaged inference scores against the records' labels (validation's own
    functions), and their summary text; ``({}, '')`` for an unlabelled subset."""
    labelled = [r for r in records if r.label >= 0 and r.video_id in means]
    if not labelled:
        return {}, ''
    videos = {r.video_id: (means[r.video_id], 1, r.label_set if multilabel else r.label) for r in labelled}
    if multilabel:
        m = multilabel_metrics(videos)
        return m, (f" | {subset}: mAP {m['mAP']:.4f}, {top_k_text('recall@1', m['recall_at_1'], m['classes'])}, "
                   f"{top_k_text('recall@5', m['recall_at_5'], m['classes'])} over {m['videos']} videos")
    m = video_metrics(videos)
    return m, (f" | {subset}: video top-1 {m['video_top1']:.4f}, {top_k_text('top-5', m['video_top5'], m['classes'])}"
               f", mean class {m['mean_class_acc']:.4f}; per-class table, confusion matrix and chart beside it")
