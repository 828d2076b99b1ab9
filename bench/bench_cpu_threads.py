"""CPU training speed against torch's intra-op threads and the DataLoader workers beside them.

    python bench/bench_cpu_threads.py [--epochs 3] [--threads 1 2] [--workers 0 2]

Trains the demo's model (``demo.py``'s flags: ResNet-10 at width 0.25, 8 x 56 x 56
clips, batch 16) on the demo data (rendered and converted first if missing) for ``--epochs``
epochs with each ``--cpu_threads`` x ``--n_threads`` pair, and prints training clips/s (the
mean of the epochs after the first, from ``train.log``) and the wall time of the run as a
Markdown table for docs/benchmarks.md.
"""
import argparse
import csv
import os
import platform
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


def run(root: Path, threads: int, workers: int, epochs: int) -> tuple:
    """(training clips/s after the first epoch, wall seconds) of one short demo training."""
    result = Path(tempfile.mkdtemp(prefix='bench_threads_'))
    base = flags_without(DEMO_FLAGS, ['--n_epochs', '--n_threads', '--checkpoint', '--inference'])
    cmd = [sys.executable, str(ROOT / 'main.py'), '--video_path', str(root / 'jpg'), '--annotation_path',
           str(root / 'ucf101_01.json'), '--result_path', str(result), *base, '--n_epochs', str(epochs),
           '--n_threads', str(workers), '--cpu_threads', str(threads), '--checkpoint', '0', '--no_progress']
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    with open(result / 'train.log', encoding='utf-8') as f:
        rows = list(csv.DictReader(f, delimiter='\t'))
    shutil.rmtree(result, ignore_errors=True)
    later = [float(r['clips_per_s']) for r in rows[1:]] or [float(rows[0]['clips_per_s'])]
    return sum(later) / len(later), wall


def main() -> None:
    """Run every pair and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--threads', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--workers', type=int, nargs='+', default=[0, 2])
    parser.add_argument('--data_dir', type=Path, default=DEMO_ROOT)
    args = parser.parse_args()
    if prepare_demo_data(args.data_dir) != 0:
        sys.exit('preparing the demo data failed')
    print(f'\n# bench_cpu_threads  {time.strftime("%Y-%m-%d")}  {platform.machine()}, '
          f'{os.cpu_count()} CPUs, {args.epochs} epochs\n')
    print('| torch threads | DataLoader workers | training clips/s | wall s |')
    print('|---|---|---|---|')
    for workers in args.workers:
        for threads in args.threads:
            clips, wall = run(args.data_dir, threads, workers, args.epochs)
            print(f'| {threads} | {workers} | {clips:.1f} | {wall:.1f} |', flush=True)


if __name__ == '__main__':
    main()
