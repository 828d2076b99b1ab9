"""Issue 25: clips/s from tar shards against the per-file loaders on the same real footage; memory; scale.

    python bench/bench_shards.py [--videos 300] [--frames 48] [--workers 2] [--work_dir DIR] [--no_cold]
    python bench/bench_shards.py --scale_only [--samples 700000 --shards 1000]

Makes ``--videos`` videos of ``--frames`` real 320 x 240 frames (cut from the clips of
``shared/media``) as JPG folders and as short-GOP mp4 files with frame tables, in 6 class folders
(``folder_json`` splits them), writes each into shards (``write_shards``, 64 MB), then reads one
training epoch through a DataLoader as ``main.py`` builds it (``--workers`` workers, batches of 8,
16 x 112 x 112 random crops): from the files, and from the shards. Each is read warm (a pass
before, so the page cache holds the data) and, unless ``--no_cold``, cold (the page cache dropped
through ``/proc/sys/vm/drop_caches`` before the pass: root only). Memory: the peak RSS of the main
process and of the workers over the pass, and the workers' RSS after each of ``--epochs`` epochs from shards. Scale: an index of ``--samples`` samples in ``--shards``
shards (offsets made up; no tar is read) -> the training dataset's records and one rank's epoch
order of a 64-rank job, timed, with the memory it adds. Prints Markdown tables (docs/benchmarks.md).
"""
import argparse
import json
import os
import platform
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from real_frames import MEDIA, media_frames  # noqa: E402


def rss_mb(pid: int) -> float:
    """A process's resident memory now, in MB (0 once it is gone)."""
    try:
        with open(f'/proc/{pid}/status') as f:
            return next(int(line.split()[1]) for line in f if line.startswith('VmRSS:')) / 1024
    except (OSError, StopIteration):
        return 0.0


def make_videos(work: Path, videos: int, frames: int, media: Path) -> None:
    """``videos`` clips of real footage, as JPG folders (work/jpg) and mp4 files (work/video), 6 classes."""
    from PIL import Image
    from conversion.writers import encode_video
    from datasets.formats.video_files import store_frame_table
    pictures = media_frames(media)
    for k in range(videos):
        name, cls = f'v{k:05d}', f'class{k % 6}'
        clip = [pictures[(k * 37 + i) % len(pictures)] for i in range(frames)]
        folder = work / 'jpg' / cls / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(clip):
            Image.fromarray(frame).save(folder / f'image_{i + 1:05d}.jpg', quality=90)
        mp4 = work / 'video' / cls / f'{name}.mp4'
        mp4.parent.mkdir(parents=True, exist_ok=True)
        encode_video(mp4, clip, 'libx264', 25, {'g': '16', 'bf': '0', 'crf': '23'})
        store_frame_table(mp4)


def prepare(work: Path, videos: int, frames: int, media: Path) -> Dict[str, float]:
    """The footage, its annotations and its shards (made once per work dir); seconds each write took."""
    from util_scripts import folder_json, write_shards
    took = {}
    if not (work / 'video').is_dir():
        make_videos(work, videos, frames, media)
    for kind in ('jpg', 'video'):
        ann = work / f'{kind}.json'
        if not ann.exists():
            assert folder_json.main([str(work / kind), str(ann), '--file_type', kind]) == 0
        if not (work / f'{kind}_shards' / 'training.shards.json').exists():
            start = time.perf_counter()
            assert write_shards.main([str(work / kind), str(ann), str(work / f'{kind}_shards'), '--file_type', kind,
                                      '--shard_mb', '64', '--no_progress']) == 0
            took[kind] = time.perf_counter() - start
    return took


def drop_caches() -> bool:
    """Empty the page cache (root only); whether it could."""
    try:
        os.sync()
        with open('/proc/sys/vm/drop_caches', 'w') as f:
            f.write('3\n')
        return True
    except OSError:
        return False


def one_epoch(work: Path, kind: str, sharded: bool, workers: int) -> Dict[str, float]:
    """clips/s of one training epoch through a DataLoader like main.py's, and the peak RSS of its processes."""
    import torch
    import datasets
    from opts import parse_opts
    source = work / (f'{kind}_shards' if sharded else kind)
    opt = parse_opts(['--video_path', str(source), '--annotation_path', str(work / f'{kind}.json'),
                      '--file_type', 'shards' if sharded else kind, '--n_classes', '6', '--sample_duration', '16',
                      '--sample_size', '112'])
    data = datasets.get_training_data(opt)
    sampler = datasets.epoch_sampler(data, 1, 0, 1, 8, workers, opt.shard_buffer)
    sampler.set_epoch(1)
    loader = torch.utils.data.DataLoader(data, batch_sampler=datasets.EpochBatches(sampler), num_workers=workers,
                                         collate_fn=datasets.collate, prefetch_factor=4 if workers else None)
    peak = {'main': 0.0, 'workers': 0.0}
    done = threading.Event()

    def watch() -> None:
        me = os.getpid()
        while not done.is_set():
            kids = [int(p) for p in os.listdir('/proc') if p.isdigit() and _parent(int(p)) == me]
            peak['main'] = max(peak['main'], rss_mb(me))
            peak['workers'] = max(peak['workers'], max((rss_mb(p) for p in kids), default=0.0))
            time.sleep(0.2)
    threading.Thread(target=watch, daemon=True).start()
    clips, failed = 0, 0
    start = time.perf_counter()
    for batch in loader:
        clips += 0 if batch['clip'] is None else len(batch['clip'])
        failed += len(batch['failed'])
    seconds = time.perf_counter() - start
    done.set()
    return {'clips_s': clips / seconds, 'clips': clips, 'failed': failed, **peak}


def worker_memory(work: Path, kind: str, sharded: bool, workers: int, epochs: int) -> List[float]:
    """The DataLoader workers' RSS (MB, the largest) after each of ``epochs`` epochs (persistent workers)."""
    import torch
    import datasets
    from opts import parse_opts
    opt = parse_opts(['--video_path', str(work / (f'{kind}_shards' if sharded else kind)), '--annotation_path',
                      str(work / f'{kind}.json'), '--file_type', 'shards' if sharded else kind, '--n_classes', '6',
                      '--sample_duration', '16', '--sample_size', '112'])
    data = datasets.get_training_data(opt)
    sampler = datasets.epoch_sampler(data, 1, 0, 1, 8, workers, opt.shard_buffer)
    loader = torch.utils.data.DataLoader(data, batch_sampler=datasets.EpochBatches(sampler), num_workers=workers,
                                         collate_fn=datasets.collate, persistent_workers=True, prefetch_factor=4)
    after = []
    for epoch in range(1, epochs + 1):
        sampler.set_epoch(epoch)
        for _ in loader:
            pass
        me = os.getpid()
        after.append(max(rss_mb(int(p)) for p in os.listdir('/proc') if p.isdigit() and _parent(int(p)) == me))
    return after


def _parent(pid: int) -> int:
    try:
        with open(f'/proc/{pid}/stat') as f:
            return int(f.read().rsplit(')', 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


def scale(samples: int, shards: int, work: Path) -> Dict[str, float]:
    """The training dataset and one rank's epoch order for ``samples`` in ``shards`` (a made-up index)."""
    from datasets.formats.shard_index import index_record, shard_name
    per = samples // shards
    entries = [{'name': shard_name('training', s), 'samples': per, 'bytes': per * 1_500_000 + 1024,
                'sha256': '0' * 64, 'offsets': list(range(0, per * 1_500_000, 1_500_000 // 512 * 512))[:per]}
               for s in range(shards)]
    folder = work / 'scale'
    folder.mkdir(parents=True, exist_ok=True)
    (folder / 'training.shards.json').write_text(json.dumps(index_record(
        'training', 'video', 'video', [f'c{i}' for i in range(700)], entries, [], 1, 0)))
    ann = folder / 'annotation.json'  # the annotation file main.py is given beside the shards: 700 labels
    if not ann.exists():
        db = {f'v{k:07d}': {'subset': 'training', 'annotations': {'label': f'c{k % 700}', 'segment': [1, 25]}}
              for k in range(per * shards)}
        ann.write_text(json.dumps({'labels': [f'c{i}' for i in range(700)], 'database': db}))
    import datasets
    from opts import parse_opts
    opt = parse_opts(['--video_path', str(folder), '--annotation_path', str(ann), '--file_type', 'shards',
                      '--n_classes', '700'])
    before = rss_mb(os.getpid())
    start = time.perf_counter()
    data = datasets.get_training_data(opt)  # what main.py builds: the annotation's labels read, the index read
    ready = time.perf_counter() - start
    sampler = datasets.epoch_sampler(data, 1, 5, 64, 8, 8)
    sampler.set_epoch(1)
    first = next(iter(sampler.batches()))
    order = time.perf_counter() - start - ready
    assert len(first) == 8
    return {'samples': per * shards, 'index_mb': (folder / 'training.shards.json').stat().st_size / 2 ** 20,
            'annotation_mb': ann.stat().st_size / 2 ** 20,
            'ready_s': ready, 'order_s': order, 'added_mb': rss_mb(os.getpid()) - before}


def main(argv: List[str] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--videos', type=int, default=300)
    p.add_argument('--frames', type=int, default=48)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--work_dir', type=Path, default=Path('/tmp/bench_shards'))
    p.add_argument('--media', type=Path, default=MEDIA, help='Folder of real .mp4 clips (default: shared/media)')
    p.add_argument('--no_cold', action='store_true')
    p.add_argument('--epochs', type=int, default=6, help='Epochs of the memory measurement (persistent workers)')
    p.add_argument('--scale_only', action='store_true')
    p.add_argument('--samples', type=int, default=700_000)
    p.add_argument('--shards', type=int, default=1000)
    args = p.parse_args(argv)
    print(f'{time.strftime("%Y-%m-%d %H:%M")}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; '
          f'python {platform.python_version()}')
    if not args.scale_only:
        took = prepare(args.work_dir, args.videos, args.frames, args.media)
        for kind, seconds in took.items():
            size = sum(f.stat().st_size for f in (args.work_dir / f'{kind}_shards').glob('*.tar')) / 2 ** 20
            print(f'write_shards {kind}: {seconds:.1f} s for {size:.0f} MB')
        print('\n| storage | read | page cache | clips/s | failed | peak RSS main MB | peak RSS per worker MB |')
        print('|---|---|---|---|---|---|---|')
        for kind in ('jpg', 'video'):
            for sharded in (False, True):
                for cold in ([False] if args.no_cold else [True, False]):
                    if cold and not drop_caches():
                        print(f'| {kind} | - | cold | cannot drop the page cache here (not root) | | | |')
                        continue
                    if not cold:
                        one_epoch(args.work_dir, kind, sharded, args.workers)  # warms the page cache
                    r = one_epoch(args.work_dir, kind, sharded, args.workers)
                    print(f"| {kind} | {'shards' if sharded else 'files'} | {'cold' if cold else 'warm'} | "
                          f"{r['clips_s']:.1f} | {r['failed']} | {r['main']:.0f} | {r['workers']:.0f} |", flush=True)
        print()
        for kind in ('jpg', 'video'):
            for sharded in (False, True):
                after = worker_memory(args.work_dir, kind, sharded, args.workers, args.epochs)
                print(f"worker RSS reading {kind} {'shards' if sharded else 'files'} after each of {args.epochs} "
                      'epochs (MB): ' + ', '.join(f'{m:.0f}' for m in after), flush=True)
    r = scale(args.samples, args.shards, args.work_dir)
    print(f"\nscale: {r['samples']:,} samples in {args.shards} shards (index {r['index_mb']:.1f} MB; annotation file "
          f"{r['annotation_mb']:.0f} MB): dataset ready in "
          f"{r['ready_s']:.2f} s, one rank's epoch order of 64 in {r['order_s']:.2f} s, {r['added_mb']:.0f} MB added; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    return 0


if __name__ == '__main__':
    sys.exit(main())
