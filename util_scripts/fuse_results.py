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
from typing import Dict, List, Optional, Sequence

from common import cli
from datasets.formats.annotation_json import SUBSET_ALIASES
from evaluation.results_json import Ranking, load_results, write_results
from evaluation.scoring import evaluate_files


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


def fuse_files(sources: Sequence[Path], weights: Sequence[float], dst: Path) -> None:
    """Fuse the result files into ``dst`` and say how many videos it holds."""
    results = [load_results(p) for p in sources]
    fused = fuse(results, weights)
    dropped = len(set().union(*results)) - len(fused)
    write_results(dst, fused)
    print(f'{dst}: {len(fused)} videos fused from {len(sources)} streams'
          + (f' ({dropped} videos missing from some stream left out)' if dropped > 0 else ''))


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    """Command-line arguments."""
    parser = cli.parser('fuse_results', __doc__)
    parser.add_argument('inputs', type=Path, nargs='+', help='inference JSON files, then the output JSON')
    parser.add_argument('--weights', type=cli.float_in(0), nargs='+', default=None, help='one per input (default: equal)')
    parser.add_argument('--annotation_path', type=Path, default=None, help='ground truth to evaluate against')
    parser.add_argument('--subset', default='validation', choices=sorted(SUBSET_ALIASES))
    parser.add_argument('-k', type=cli.positive_int, default=5)
    args = parser.parse_args(argv)
    if len(args.inputs) < 3:
        parser.error('give at least two inference JSON files and the output path')
    return args


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    args = parse_args(argv)
    *sources, dst = args.inputs
    weights = args.weights or [1.0] * len(sources)
    if len(weights) != len(sources) or sum(weights) <= 0:
        return cli.fail(f'--weights needs {len(sources)} non-negative numbers, not all zero')

    def body() -> None:
        fuse_files(sources, weights, dst)
        if args.annotation_path is not None:
            evaluate_files(args.annotation_path, dst, args.subset, args.k)
    return cli.run(body)


if __name__ == '__main__':
    sys.exit(main())
