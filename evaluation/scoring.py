"""Scoring a result file against an annotation file: the ground truth of a subset, and the run.

Semantics of the original ``eval_accuracy``: the ground truth is every labelled entry of the
subset; a video is correct when its label is among the k best-scored labels of its result
list; accuracy = correct / number of ground-truth videos (with ``ignore`` only the videos
present in the result file count; without it a missing video is wrong). Standard library
and Pillow (for the chart).
"""
import os
from pathlib import Path
from typing import Callable, Dict, List, Tuple, Union

from common.atomic import atomic_write_bytes
from datasets.formats.annotation_json import (AnnotationError, canonical_subset, entry_labels, file_labels,
                                              read_annotation_json)
from evaluation.metrics import mean_class_accuracy, per_class_accuracy, top_k_accuracy
from evaluation.reports import write_reports
from evaluation.results_json import ResultsError, load_results

PathLike = Union[str, os.PathLike]


def load_ground_truth(path: PathLike, subset: str = 'validation'
                      ) -> Tuple[List[str], Dict[str, str]]:
    """Read an annotation JSON; return (class labels, {video_id: label}) for one subset."""
    path = Path(path)
    data = read_annotation_json(path)
    subset = canonical_subset(subset)
    ground_truth: Dict[str, str] = {}
    for video_id, entry in data['database'].items():
        if not isinstance(entry, dict) or canonical_subset(str(entry.get('subset'))) != subset:
            continue
        names, multi = entry_labels(entry)
        if multi:
            raise AnnotationError(f'{path}: video {video_id!r} has a list of labels: for multi-label '
                                  'data main.py --multilabel --inference reports mAP and top-k recall')
        if names:
            ground_truth[str(video_id)] = names[0]
    labels = file_labels(path, data) if 'labels' in data or 'taxonomy' in data else []
    known = set(labels)
    labels += sorted({x for x in ground_truth.values() if x not in known})
    return labels, ground_truth


def evaluate_files(ground_truth_path: PathLike, result_path: PathLike,
                   subset: str = 'validation', k: int = 1, ignore: bool = False,
                   save: bool = False, per_class_k: int = 10,
                   log: Callable[[str], None] = print) -> Dict[str, float]:
    """Evaluate one result file, log the summary, write the reports; return the metrics."""
    ground_truth_path, result_path = Path(ground_truth_path), Path(result_path)
    labels, ground_truth = load_ground_truth(ground_truth_path, subset)
    if not ground_truth:
        raise AnnotationError(f'{ground_truth_path}: no labelled video in subset '
                              f'"{canonical_subset(subset)}"')
    results = load_results(result_path)
    missing = sum(1 for v in ground_truth if v not in results)
    if ignore and missing == len(ground_truth):
        raise ResultsError(f'{result_path}: none of the {len(ground_truth)} videos of subset '
                           f'"{canonical_subset(subset)}" has a result')
    metrics: Dict[str, float] = {}
    for kk in dict.fromkeys([k, 1, 5]):
        if kk == 5 != k and len(labels) <= 5:  # always 1 with 5 classes or fewer: not a measurement
            log(f'top-5 accuracy: n/a ({len(labels)} classes)')
            continue
        acc, correct, total = top_k_accuracy(ground_truth, results, kk, ignore)
        metrics[f'top{kk}'] = acc
        log(f'top-{kk} accuracy: {acc:.4f} ({correct}/{total})')
    per_class = per_class_accuracy(ground_truth, results, ignore)
    metrics['mean_class'] = mean_class_accuracy(per_class)
    log(f'mean class accuracy: {metrics["mean_class"]:.4f} ({len(per_class)} classes)')
    if missing:
        how = 'not counted (--ignore)' if ignore else 'counted as wrong'
        log(f'note: {missing} of {len(ground_truth)} ground-truth videos have no result; {how}')
    title = (f'{ground_truth_path.stem} {canonical_subset(subset)} / {result_path.name}: '
             f'top-1 {metrics["top1"]:.4f}, mean class {metrics["mean_class"]:.4f}')
    try:
        if save:
            top_path = result_path.parent / f'top{k}.txt'
            atomic_write_bytes(top_path, str(metrics[f'top{k}']).encode('utf-8'))
        paths = write_reports(result_path, ground_truth, results, labels, ignore,
                              per_class_k, title)
    except OSError as e:
        raise ResultsError(f'{result_path.parent}: cannot write reports ({e.strerror or e})') \
            from None
    log('reports: ' + ', '.join(str(p) for p in paths.values()))
    return metrics
