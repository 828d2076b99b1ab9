"""Video-level top-k accuracy of an inference result JSON against an annotation JSON.

    python -m util_scripts.eval_accuracy GT_JSON RESULT_JSON [-k K] [--subset validation]
        [--ignore] [--save] [--per_class_k 10]

Semantics of the original tool: the ground truth is every labelled entry of the subset in
the annotation JSON; a video is correct when its label is among the k best-scored labels of
its result list; accuracy = correct / number of ground-truth videos (with ``--ignore`` only
the videos present in the result file are counted; without it a missing video is wrong).
``--save`` writes ``top<k>.txt`` (the accuracy) next to the result file.

Beyond the original: ``val``/``train``/``test`` are accepted as subset names, a result file
written with ``--inference_no_average`` is read (per-segment scores averaged per label),
top-1/top-5 and the mean class accuracy are printed in the same run, and three reports are
written next to the result file: ``<stem>_per_class.tsv``, ``<stem>_confusion.tsv`` and
``<stem>_classes.png`` (the best and worst classes by top-1 accuracy). Unreadable input is a
one-line error with exit code 2. Only the standard library and Pillow are imported.
"""
import sys
from typing import List, Optional

from common import cli
from datasets.formats.annotation_json import SUBSET_ALIASES
from evaluation.scoring import evaluate_files


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point; returns the exit code (2 for unusable input)."""
    parser = cli.parser('eval_accuracy', __doc__)
    cli.add_paths(parser, ground_truth_path='Annotation JSON',
                  result_path='Result JSON written by inference')
    parser.add_argument('-k', type=cli.positive_int, default=1, help='top-k (default 1)')
    parser.add_argument('--subset', default='validation', choices=sorted(SUBSET_ALIASES),
                        help='Subset of the annotation JSON (default validation)')
    parser.add_argument('--ignore', action='store_true',
                        help='Count only ground-truth videos present in the result file')
    parser.add_argument('--save', action='store_true',
                        help='Write top<k>.txt with the accuracy next to the result file')
    parser.add_argument('--per_class_k', type=cli.positive_int, default=10,
                        help='Classes shown at each end of the bar chart (default 10)')
    args = parser.parse_args(argv)

    def body() -> None:
        evaluate_files(args.ground_truth_path, args.result_path, args.subset, args.k,
                       args.ignore, args.save, args.per_class_k)
    return cli.run(body)


if __name__ == '__main__':
    sys.exit(main())
