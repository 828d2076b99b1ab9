"""check_dataset --duplicates at Kinetics scale: the search over 700,000 signatures, and hashing real videos.

    python bench/bench_duplicates.py [--videos 700000] [--val_share 0.05] [--planted 100] [--flips 10]

The search: random 256-bit signatures (as unrelated videos give: half their bits differ) for
``--videos`` videos, ``--val_share`` of them validation, ``--planted`` validation ones made
copies of training ones with ``--flips`` bits changed (the few a re-encode moves); reports the
time ``datasets.duplicates.near_duplicates`` takes, its peak Python memory and how many planted
pairs it found. Hashing: the signatures per second of 320 x 240 H.264 files cut from the clips
of ``shared/media`` (one process), the cost a real dataset adds per video.
"""
import argparse
import platform
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datasets.build import get_loader  # noqa: E402
from datasets.duplicates import FRAMES, near_duplicates, signature  # noqa: E402


def search(n: int, val_share: float, planted: int, flips: int) -> None:
    rng = np.random.default_rng(0)
    signatures = rng.integers(0, 2 ** 63, size=(n, FRAMES), dtype=np.uint64) << np.uint64(1)
    signatures |= rng.integers(0, 2, size=(n, FRAMES), dtype=np.uint64)
    n_val = int(n * val_share)
    train, val = signatures[n_val:], signatures[:n_val].copy()
    planted = min(planted, n_val, len(train))  # a small --videos plants what fits
    step = min(997, len(train) // max(1, planted))
    for j in range(planted):
        val[j] = train[j * step]
        for k in rng.choice(FRAMES * 64, size=flips, replace=False):
            val[j, k // 64] ^= np.uint64(1) << np.uint64(k % 64)
    tracemalloc.start()
    start = time.perf_counter()
    found = near_duplicates(train, val)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2 ** 20
    tracemalloc.stop()
    hits = sum(1 for i, j, _ in found if j < planted and i == j * step)
    print(f'| {len(train):,} training, {len(val):,} validation | {seconds:.2f} s | {peak:.0f} MB | '
          f'{hits} of {planted} planted pairs ({flips} bits changed), {len(found) - hits} other pairs |')


def hashing(media: Path, n: int = 8) -> None:
    from conversion.writers import encode_video
    from real_frames import media_frames
    frames = media_frames(media)
    loader = get_loader('video')
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for k in range(n):
            path = Path(tmp) / f'v{k}.mp4'
            encode_video(path, frames[k * 40:k * 40 + 50], 'libx264', 25, {'g': '25'})
            paths.append(path)
        start = time.perf_counter()
        for path in paths:
            signature(loader, path, range(50))
        seconds = time.perf_counter() - start
    print(f'\nhashing: {n / seconds:.1f} videos/s (50-frame 320 x 240 H.264 files, one process, frame tables built '
          f'on the way)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--videos', type=int, default=700_000)
    parser.add_argument('--val_share', type=float, default=0.05)
    parser.add_argument('--planted', type=int, default=100)
    parser.add_argument('--flips', type=int, default=10)
    parser.add_argument('--media', type=Path, default=ROOT.parent / 'shared' / 'media')
    args = parser.parse_args()
    print(f'# bench_duplicates {time.strftime("%Y-%m-%d %H:%M")}, {platform.machine()}\n')
    print('| signatures | search | peak Python memory | found |')
    print('|---|---|---|---|')
    search(args.videos, args.val_share, args.planted, args.flips)
    hashing(args.media)


if __name__ == '__main__':
    main()
