"""Does Space-Time Cubic Puzzles pretraining help? Measured on the built-in demo data.

    python bench/bench_puzzle_transfer.py [--labelled 0.25] [--pretrain_epochs 200] [--epochs 30]
                                          [--seeds 1 2 3 4 5] [--out bench_results/puzzle_transfer]

1. ``--pretext cubic_puzzle`` on every training video of the demo's split 1 (labels unused).
2. For each seed, two supervised runs on the same seeded ``--labelled`` fraction of each
   class's training videos, with the same flags and epochs: from scratch, and fine-tuned
   from the puzzle checkpoint (``--pretrain_path``, every layer trained).
3. A table of the validation video top-1 (last epoch and best epoch) of both, per seed and
   averaged. Renders the demo data first if it is not there yet.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import main as main_module  # noqa: E402
from demo import DEMO_ROOT, prepare_demo_data  # noqa: E402

MODEL = ['--dataset', 'ucf101', '--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25',
         '--n_threads', '2', '--no_progress', '--batch_size', '16', '--weight_decay', '1e-3']
PUZZLE = ['--pretext', 'cubic_puzzle', '--sample_size', '28', '--sample_duration', '4', '--optimizer', 'adamw',
          '--learning_rate', '1e-3']
SUPERVISED = ['--n_classes', '6', '--sample_size', '56', '--sample_duration', '8', '--sample_t_stride', '2',
              '--train_crop', 'random', '--train_crop_min_scale', '0.5', '--no_hflip', '--learning_rate', '0.05',
              '--n_val_samples', '2']


def val_top1(result: Path) -> Dict[str, float]:
    """Last and best validation video top-1 (or puzzle accuracy) of a run's val.log."""
    rows = [line.split('\t') for line in (result / 'val.log').read_text().splitlines()]
    column = rows[0].index('video_top1')
    values = [float(r[column]) for r in rows[1:]]
    return {'last': values[-1], 'best': max(values)}


def run(argv: List[str]) -> None:
    """main.py in this process; stop on failure."""
    code = main_module.main(argv)
    if code != 0:
        sys.exit(f'main.py failed ({code}): {" ".join(argv)}')


def main(argv=None) -> int:
    """Pretrain once, then scratch vs fine-tuned per seed; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--labelled', type=float, default=0.25, help='fraction of the training labels used')
    parser.add_argument('--pretrain_epochs', type=int, default=200)
    parser.add_argument('--epochs', type=int, default=30, help='supervised epochs (both arms)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[1, 2, 3, 4, 5])
    parser.add_argument('--out', type=Path, default=Path('bench_results/puzzle_transfer'))
    parser.add_argument('--root', type=Path, default=DEMO_ROOT, help='demo data folder (rendered if missing)')
    args = parser.parse_args(argv)
    if prepare_demo_data(args.root) != 0:
        return 1
    data = ['--video_path', str(args.root / 'jpg'), '--annotation_path', str(args.root / 'ucf101_01.json')]
    start = time.perf_counter()
    pre = args.out / 'pretrain'
    milestones = [str(round(args.pretrain_epochs * 2 / 3))]
    run(data + MODEL + PUZZLE + ['--result_path', str(pre), '--n_epochs', str(args.pretrain_epochs),
                                 '--multistep_milestones', *milestones, '--checkpoint', '0'])
    pretrain_minutes = (time.perf_counter() - start) / 60
    puzzle = val_top1(pre)
    supervised = data + MODEL + SUPERVISED + ['--instance_fraction', str(args.labelled), '--n_epochs',
                                              str(args.epochs), '--multistep_milestones',
                                              str(round(args.epochs * 2 / 3)), '--checkpoint', '0']
    rows = []
    for seed in args.seeds:
        arms = {}
        for arm, extra in (('scratch', []), ('puzzle', ['--pretrain_path', str(pre / 'save_latest.pth')])):
            result = args.out / f'{arm}_seed{seed}'
            run(supervised + extra + ['--manual_seed', str(seed), '--result_path', str(result)])
            arms[arm] = val_top1(result)
        rows.append((seed, arms))
    print(f'\npuzzle pretraining: {args.pretrain_epochs} epochs, {pretrain_minutes:.1f} min; validation puzzle '
          f"accuracy {puzzle['last']:.3f} (chance 1/48 = 0.021)")
    print(f'supervised: {args.labelled:.0%} of the training labels, {args.epochs} epochs; validation video top-1\n')
    print('| seed | scratch last | scratch best | puzzle-init last | puzzle-init best |')
    print('|---|---|---|---|---|')
    for seed, arms in rows:
        print(f"| {seed} | {arms['scratch']['last']:.3f} | {arms['scratch']['best']:.3f} | "
              f"{arms['puzzle']['last']:.3f} | {arms['puzzle']['best']:.3f} |")
    mean = {f'{a}_{k}': statistics.mean(r[1][a][k] for r in rows) for a in ('scratch', 'puzzle') for k in ('last', 'best')}
    print(f"| mean | {mean['scratch_last']:.3f} | {mean['scratch_best']:.3f} | {mean['puzzle_last']:.3f} | "
          f"{mean['puzzle_best']:.3f} |")
    return 0


if __name__ == '__main__':
    sys.exit(main())
