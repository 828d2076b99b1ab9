"""Two-stream late fusion: average the per-video scores of several inference JSON files.

    python -m util_scripts.fuse_results RGB_JSON FLOW_JSON DST_JSON [--weights 1 1]
                                        [--annotation_path GT_JSON --subset validation] [-k 5]

Each input is ``main.py --inference`` output (``{"results": {id: [{"label", "score"}, ...]}}``;
write them with ``--output_topk 0`` so every class has a score — a label missing from a
video's list counts as 0). The fused scores are the weighted mean per label; DST_JSON has the
same format with every label, best first. With ``--annotation_path`` the fused result is
evaluated like ``eval_accuracy`` (top-1, top-k, mean class accuracy, per-class reports).
"""
import argparse
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from datasets.formats.atomic import atomic_write_json
from util_scripts.eval_accuracy import EvalError, evaluate_files, load_results

Ranking = List[Tuple[str, float]]


def fuse(results: Sequence[Dict[str, Ranking]], weights: Sequence[float]) -> Dict[str, Ranking]:
    """Weighted mean of each label's score per video, over the videos every input has."""
    common = set(results[0]).intersection(*results[1:])
    total = sum(weights)
    fused: Dict[str, Ranking] = {}
    for vid in sorted(common):
        scores: Dict[str, float] = {}
        for result, weight in zip(results, weights):
            for label, score in result[vid]:
                scores[label] = scores.get(label, 0.0) + weight * score / total
        fused[vid] = sorted(scores.items(), key=lambda item: -item[1])
    return fused


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('inputs', type=Path, nargs='+', help='inference JSON files, then the output JSON')
    parser.add_argument('--weights', type=float, nargs='+', default=None, help='one per input (default: equal)')
    parser.add_argument('--annotation_path', type=Path, default=None, help='ground truth to evaluate against')
    parser.add_argument('--subset', default='validation')
    parser.add_argument('-k', type=int, default=5)
    args = parser.parse_args(argv)
    if len(args.inputs) < 3:
        parser.error('give at least two inference JSON files and the output path')
    *sources, dst = args.inputs
    weights = args.weights or [1.0] * len(sources)
    if len(weights) != len(sources) or any(w < 0 for w in weights) or sum(weights) <= 0:
        print(f'error: --weights needs {len(sources)} non-negative numbers, not all zero', file=sys.stderr)
        return 2
    try:
        results = [load_results(p) for p in sources]
        fused = fuse(results, weights)
        dropped = len(set().union(*results)) - len(fused)
        atomic_write_json(dst, {'results': {vid: [{'label': l, 'score': s} for l, s in ranking]
                                            for vid, ranking in fused.items()}})
        print(f'{dst}: {len(fused)} videos fused from {len(sources)} streams'
              + (f' ({dropped} videos missing from some stream left out)' if dropped > 0 else ''))
        if args.annotation_path is not None:
            evaluate_files(args.annotation_path, dst, args.subset, args.k)
    except EvalError as e:
        print(f'error: {e}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
