"""CPU training speed against torch's intra-op threads and the DataLoader workers beside them.

    python bench/bench_cpu_threads.py [--epochs 3] [--threads 0 1 2] [--workers 0 2] [--data_dir DIR]
        [--main_flags='--flag value ...']

Trains the demo's model (``demo.py``'s flags: ResNet-10 at width 0.25, 8 x 56 x 56
clips, batch 16) on the demo data (rendered and converted first if missing) for ``--epochs``
epochs with each ``--cpu_threads`` x ``--n_threads`` pair, and prints training clips/s (the
mean of the epochs after the first, from ``train.log``), the wall time of the run and the threads
the model got (``--cpu_threads 0`` measures them: main.py's ``CPU threads:`` line) as a Markdown
table for docs/benchmarks.md. ``--main_flags`` are added last (later flags win): another model or
shape, ``--precision fp32``; ``--data_dir`` another prepared UCF-101 style folder (say
``bench_results/data/moving`` of bench/moving_task.py, with ``--n_classes 8``).
"""
import argparse
import csv
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demo import DEMO_FLAGS, DEMO_ROOT, prepare_demo_data  # noqa: E402


def flags_without(flags: List[str], names: List[str]) -> List[str]:
    """``flags`` minus the given options and their values."""
    out, skip = [], False
    for f in flags:
        if skip:
            skip = False
        elif f in names:
            skip = f not in ('--inference',)
        else:
            out.append(f)
    return out


def run(root: Path, threads: int, workers: int, epochs: int, extra: List[str]) -> tuple:
    """(training clips/s after the first epoch, wall seconds, the model's threads) of one short training."""
    result = Path(tempfile.mkdtemp(prefix='bench_threads_'))
    base = flags_without(DEMO_FLAGS, ['--n_epochs', '--n_threads', '--checkpoint', '--inference'])
    cmd = [sys.executable, str(ROOT / 'main.py'), '--video_path', str(root / 'jpg'), '--annotation_path',
           str(root / 'ucf101_01.json'), '--result_path', str(result), *base, '--n_epochs', str(epochs),
           '--n_threads', str(workers), '--cpu_threads', str(threads), '--checkpoint', '0', '--no_progress', *extra]
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    wall = time.perf_counter() - start
    said = [line for line in out.splitlines() if line.startswith('CPU threads: ')]
    with open(result / 'train.log', encoding='utf-8') as f:
        rows = list(csv.DictReader(f, delimiter='\t'))
    shutil.rmtree(result, ignore_errors=True)
    later = [float(r['clips_per_s']) for r in rows[1:]] or [float(rows[0]['clips_per_s'])]
    return sum(later) / len(later), wall, said[0][len('CPU threads: '):] if said else '?'


def main() -> None:
    """Run every pair and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--threads', type=int, nargs='+', default=[0, 1, 2], help='--cpu_threads values (0: measured)')
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 2])
    parser.add_argument('--data_dir', type=Path, default=DEMO_ROOT)
    parser.add_argument('--main_flags', default='', help="More main.py flags, last (give as --main_flags='...')")
    args = parser.parse_args()
    if args.data_dir == DEMO_ROOT and prepare_demo_data(args.data_dir) != 0:
        sys.exit('preparing the demo data failed')
    print(f'\n# bench_cpu_threads  {time.strftime("%Y-%m-%d")}  {platform.machine()}, '
          f'{os.cpu_count()} CPUs, {args.epochs} epochs, data {args.data_dir}, more flags: {args.main_flags!r}\n')
    print('| --cpu_threads | DataLoader workers | training clips/s | wall s | the model got |')
    print('|---|---|---|---|---|')
    for workers in args.workers:
        for threads in args.threads:
            clips, wall, got = run(args.data_dir, threads, workers, args.epochs, shlex.split(args.main_flags))
            print(f'| {threads} | {workers} | {clips:.1f} | {wall:.1f} | {got} |', flush=True)


if __name__ == '__main__':
    main()
