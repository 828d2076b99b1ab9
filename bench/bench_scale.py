"""Dataset build time and memory at Kinetics-700 scale, and DataLoader workers' memory over an epoch.

    python bench/bench_scale.py [--entries 700000] [--batches 1500] [--workers 2] [--every 100]

Makes ``--folders`` real JPG frame folders (tiny textured frames written with PIL) and an
annotation JSON in the original's format (``labels``: 700 classes, ``database``: ``--entries``
training entries, each pointing at one of the folders through its ``video_path``), then:

- times ``datasets.get_training_data(opts.parse_opts([...]))`` and reads the main process's
  resident memory before, at its peak during (``VmHWM`` after resetting it) and after the build;
- iterates a DataLoader like ``main.py``'s (``EpochSampler``, ``--batch_size`` clips,
  ``--workers`` persistent workers, fork) for ``--batches`` batches and samples each worker's
  private memory (``Private_Clean + Private_Dirty`` of ``/proc/PID/smaps_rollup``) every
  ``--every`` batches: a worker that reads Python objects it inherited copies their pages.

Prints Markdown tables for docs/benchmarks.md. Linux only (``/proc``).
"""
import argparse
import gc
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datasets  # noqa: E402
import opts  # noqa: E402

N_LABELS = 700
MB = 1 << 20


def make_folders(root: Path, n: int, frames: int, rng: random.Random) -> List[str]:
    """``n`` frame folders ``root/real/vNNN/image_%05d.jpg`` of small textured JPEGs; their paths under ``root``."""
    names = []
    for v in range(n):
        folder = root / 'real' / f'v{v:03d}'
        names.append(f'real/v{v:03d}')
        if folder.is_dir() and len(list(folder.glob('image_*.jpg'))) == frames:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(1, frames + 1):
            pixels = np.array([[rng.randrange(256) for _ in range(3 * 64)] for _ in range(48)], np.uint8)
            Image.fromarray(pixels.reshape(48, 64, 3)).save(folder / f'image_{i:05d}.jpg', quality=80)
    return names


def write_annotation(path: Path, entries: int, folders: List[str], frames: int) -> None:
    """The original's format, streamed entry by entry (the bench's own memory stays small)."""
    labels = [f'class_{i:03d}' for i in range(N_LABELS)]
    with open(path, 'w', encoding='utf-8') as f:
        f.write('{"labels": ' + json.dumps(labels) + ', "database": {')
        for i in range(entries):
            entry = {'subset': 'training', 'annotations': {'label': labels[i % N_LABELS], 'segment': [1, frames + 1]},
                     'video_path': folders[i % len(folders)]}
            f.write(('' if i == 0 else ', ') + json.dumps(f'vid{i:07d}_000010_000020') + ': ' + json.dumps(entry))
        f.write('}}')


def status_mb(field: str, pid: str = 'self') -> float:
    """A ``/proc/PID/status`` memory field (``VmRSS``, ``VmHWM``) in MB."""
    with open(f'/proc/{pid}/status', encoding='ascii') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def private_mb(pid: int) -> float:
    """Private_Clean + Private_Dirty of a process, in MB: the pages only it holds."""
    total = 0
    with open(f'/proc/{pid}/smaps_rollup', encoding='ascii') as f:
        for line in f:
            if line.startswith(('Private_Clean:', 'Private_Dirty:')):
                total += int(line.split()[1])
    return total / 1024


def reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux clear_refs 5); False if not allowed."""
    try:
        with open('/proc/self/clear_refs', 'w', encoding='ascii') as f:
            f.write('5')
        return True
    except OSError:
        return False


def build(argv: List[str]) -> Tuple[Dict[str, float], Any]:
    """Build the training dataset; time and memory of the main process."""
    opt = opts.parse_opts(argv)
    gc.collect()
    before = status_mb('VmRSS')
    peak_ok = reset_peak()
    start = time.perf_counter()
    data = datasets.get_training_data(opt)
    seconds = time.perf_counter() - start
    result = {'seconds': seconds, 'before': before, 'after': status_mb('VmRSS'),
              'peak': status_mb('VmHWM') if peak_ok else float('nan'), 'videos': len(data)}
    return result, data


def worker_memory(data, batches: int, workers: int, batch_size: int, every: int) -> List[List[float]]:
    """Rows of (batch, private MB of each worker) while a DataLoader like main.py's reads ``batches`` batches."""
    sampler = datasets.EpochSampler(len(data), seed=1, batch_size=batch_size)
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=workers,
                                         collate_fn=datasets.collate, persistent_workers=True, prefetch_factor=4,
                                         multiprocessing_context='fork')
    it = iter(loader)
    pids = [w.pid for w in it._workers]
    rows = []
    started = time.perf_counter()
    for b in range(1, batches + 1):
        next(it)
        if b == 1 or b % every == 0 or b == batches:
            rows.append([b, time.perf_counter() - started] + [private_mb(p) for p in pids])
    del it
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    """Make the data, measure, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--entries', type=int, default=700_000, help='training entries in the annotation')
    parser.add_argument('--batches', type=int, default=1500, help='batches the DataLoader reads (0: build only)')
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--batch_size', type=int, default=16)
    parser.add_argument('--every', type=int, default=100, help='sample worker memory every N batches')
    parser.add_argument('--folders', type=int, default=8, help='real frame folders the entries point at')
    parser.add_argument('--frames', type=int, default=24, help='frames per folder')
    parser.add_argument('--sample_size', type=int, default=112)
    parser.add_argument('--data_dir', type=Path, default=None, help='where the data go (default: a temp folder)')
    args = parser.parse_args(argv)
    root = args.data_dir or Path(tempfile.mkdtemp(prefix='bench_scale_'))
    root.mkdir(parents=True, exist_ok=True)
    folders = make_folders(root / 'jpg', args.folders, args.frames, random.Random(0))
    annotation = root / f'kinetics700_{args.entries}.json'
    if not annotation.exists():
        write_annotation(annotation, args.entries, folders, args.frames)
    torch.set_num_threads(1)
    flags = ['--video_path', str(root / 'jpg'), '--annotation_path', str(annotation), '--file_type', 'jpg',
             '--sample_size', str(args.sample_size), '--n_classes', str(N_LABELS), '--no_val']
    built, data = build(flags)
    print(f'\n# bench_scale  {time.strftime("%Y-%m-%d")}  {platform.processor() or platform.machine()}, '
          f'{os.cpu_count()} CPUs, torch {torch.__version__}\n')
    print(f'annotation: {annotation} ({annotation.stat().st_size / MB:.0f} MB, {args.entries} entries); '
          f'{built["videos"]} training videos\n')
    print('| entries | build s | main RSS before MB | peak MB | after MB |')
    print('|---|---|---|---|---|')
    print(f'| {args.entries} | {built["seconds"]:.1f} | {built["before"]:.0f} | {built["peak"]:.0f} '
          f'| {built["after"]:.0f} |', flush=True)
    if args.batches <= 0:
        return 0
    rows = worker_memory(data, args.batches, args.workers, args.batch_size, args.every)
    names = [f'worker {w} private MB' for w in range(args.workers)]
    print('\n| batch | s | ' + ' | '.join(names) + ' |')
    print('|---' * (2 + args.workers) + '|')
    for row in rows:
        print(f'| {row[0]} | {row[1]:.0f} | ' + ' | '.join(f'{x:.0f}' for x in row[2:]) + ' |')
    for first in rows[:2]:  # from the first batch, and after the workers' warm-up (their first --every batches)
        growth = [rows[-1][2 + w] - first[2 + w] for w in range(args.workers)]
        print(f'\ngrowth per worker from batch {first[0]} to {rows[-1][0]} (batch {args.batch_size}): '
              + ', '.join(f'{g:.0f} MB' for g in growth) + f'; {rows[-1][1]:.0f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
