"""Video-level accuracy on plain dicts: top-k, per-class recall, mean class accuracy, confusion.

The inputs are ``ground_truth`` ({video_id: label}) and ``results`` ({video_id: ranking},
a ranking being ``[(label, score), ...]`` best first, as ``results_json.load_results``
returns). Labels may be names or class indices. A ground-truth video without a result is
wrong, or with ``ignore`` not counted. Standard library only: the same meaning serves
``eval_accuracy`` and the validation of a training run.
"""
from typing import Dict, Hashable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

Label = Hashable
Ranking = Sequence[Tuple[Label, float]]


class ClassAccuracy(NamedTuple):
    """Top-1/top-5 recall of one class over its ground-truth videos."""
    label: Label
    n_videos: int
    top1: float
    top5: float


def top_classes(scores: Sequence[float], topk: int) -> List[int]:
    """The indices of the ``topk`` best scores, best first (ties: the lower index first); ``topk`` <= 0: all."""
    order = sorted(range(len(scores)), key=lambda c: -scores[c])
    return order if topk <= 0 else order[:topk]


def in_top_k(ranking: Ranking, label: Label, k: int) -> bool:
    """Whether ``label`` is among the first ``k`` of a ranking."""
    return any(pred == label for pred, _ in ranking[:k])


def top_k_accuracy(ground_truth: Mapping[str, Label], results: Mapping[str, Ranking], k: int = 1,
                   ignore: bool = False) -> Tuple[float, int, int]:
    """Top-k video accuracy; return (accuracy, correct, total), accuracy 0.0 when total is 0."""
    correct = total = 0
    for video_id, label in ground_truth.items():
        ranking = results.get(video_id)
        if ranking is None:
            if not ignore:
                total += 1
            continue
        total += 1
        correct += in_top_k(ranking, label, k)
    return (correct / total if total else 0.0), correct, total


def per_class_accuracy(ground_truth: Mapping[str, Label], results: Mapping[str, Ranking],
                       ignore: bool = False) -> List[ClassAccuracy]:
    """Per-class top-1/top-5 recall, classes with >= 1 counted video, by top1 desc then label."""
    counts: Dict[Label, List[int]] = {}  # label -> [n_videos, top1 hits, top5 hits]
    for video_id, label in ground_truth.items():
        ranking = results.get(video_id)
        if ranking is None and ignore:
            continue
        c = counts.setdefault(label, [0, 0, 0])
        c[0] += 1
        if ranking is not None:
            c[1] += in_top_k(ranking, label, 1)
            c[2] += in_top_k(ranking, label, 5)
    rows = [ClassAccuracy(label, n, h1 / n, h5 / n) for label, (n, h1, h5) in counts.items()]
    return sorted(rows, key=lambda r: (-r.top1, r.label))


def mean_class_accuracy(per_class: Sequence[ClassAccuracy]) -> float:
    """Mean over classes of the per-class top-1 recall (0.0 when there is no class)."""
    return sum(r.top1 for r in per_class) / len(per_class) if per_class else 0.0


def accuracy_summary(ground_truth: Mapping[str, Label], results: Mapping[str, Ranking],
                     ignore: bool = False) -> Dict[str, float]:
    """``top1``, ``top5`` and ``mean_class`` accuracy of the results, in one call."""
    return {'top1': top_k_accuracy(ground_truth, results, 1, ignore)[0],
            'top5': top_k_accuracy(ground_truth, results, 5, ignore)[0],
            'mean_class': mean_class_accuracy(per_class_accuracy(ground_truth, results, ignore))}


def confusion_matrix(ground_truth: Mapping[str, Label], results: Mapping[str, Ranking],
                     labels: Optional[Sequence[Label]] = None
                     ) -> Tuple[List[Label], List[List[int]]]:
    """Square top-1 confusion counts: (labels, matrix[gt][pred]); videos without results skipped."""
    order = list(dict.fromkeys(labels or []))
    known = set(order)
    extra = set()
    for video_id, label in ground_truth.items():
        extra.add(label)
        ranking = results.get(video_id)
        if ranking:
            extra.add(ranking[0][0])
    order += sorted(extra - known)
    index = {label: i for i, label in enumerate(order)}
    matrix = [[0] * len(order) for _ in order]
    for video_id, label in ground_truth.items():
        ranking = results.get(video_id)
        if ranking:
            matrix[index[label]][index[ranking[0][0]]] += 1
    return order, matrix
