"""Issue 25: the sharded-data engines measured on what this framework stores (a video's JPEG frames per sample).

    PYTHONPATH=/tmp/shardlibs python bench/bench_shard_engines.py [--videos 400] [--frames 24] [--work_dir DIR]

(``pip install --target /tmp/shardlibs webdataset mosaicml-streaming litdata``: none of them is a
dependency of the framework yet.) Makes ``--videos`` samples of ``--frames`` real 320 x 240 JPEG
frames each (quality 90, cut from the clips of ``shared/media``), writes them with each engine's
own writer (WebDataset tar shards, MosaicML Streaming MDS, LitData chunks; shards of about 64 MB),
then reads every sample back once in one process, twice (the second read from the page cache), and
a third time from the middle on, the way each engine resumes (where it can). Prints one Markdown
table: write seconds, bytes on disk, read samples/s and MB/s, whether a mid-epoch resume is built
in, and the installed version. Results and the choice: docs/benchmarks.md (sharded data).
"""
import argparse
import io
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List


ROOT = Path(__file__).resolve().parents[1]


def samples(media: Path, videos: int, frames: int) -> List[Dict]:
    """``videos`` samples: an id, a label and ``frames`` JPEG frames (bytes) of real footage."""
    from PIL import Image
    from real_frames import media_frames
    pictures = []
    for frame in media_frames(media):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, 'JPEG', quality=90)
        pictures.append(buf.getvalue())
    return [{'id': f'v{k:06d}', 'label': k % 700,
             'frames': [pictures[(k * 7 + i) % len(pictures)] for i in range(frames)]} for k in range(videos)]


def packed(frames: List[bytes]) -> bytes:
    """Frames as one blob: a JSON header of their lengths, then the bytes (what a shard sample would hold)."""
    head = json.dumps([len(f) for f in frames]).encode()
    return len(head).to_bytes(4, 'little') + head + b''.join(frames)


def write_webdataset(items: List[Dict], out: Path) -> None:
    import webdataset as wds
    with wds.ShardWriter(str(out / 'shard-%06d.tar'), maxsize=64 << 20, verbose=0) as sink:
        for s in items:
            sink.write({'__key__': s['id'], 'cls': str(s['label']).encode(), 'frames': packed(s['frames'])})


def read_webdataset(out: Path, skip: int = 0) -> int:
    import webdataset as wds
    shards = sorted(str(p) for p in out.glob('*.tar'))
    n = 0
    for k, sample in enumerate(wds.WebDataset(shards, shardshuffle=False)):
        if k < skip:  # no resume built in: the reader skips what it already gave
            continue
        n += len(sample['frames']) > 0
    return n


def write_mds(items: List[Dict], out: Path) -> None:
    from streaming import MDSWriter
    with MDSWriter(out=str(out), columns={'id': 'str', 'label': 'int', 'frames': 'bytes'},
                   size_limit=64 << 20) as sink:
        for s in items:
            sink.write({'id': s['id'], 'label': s['label'], 'frames': packed(s['frames'])})


def read_mds(out: Path, skip: int = 0) -> int:
    import gc

    from streaming import StreamingDataset
    make = lambda: StreamingDataset(local=str(out), shuffle=False, batch_size=1, num_canonical_nodes=1)  # noqa: E731
    data = make()
    if not skip:
        return sum(1 for sample in data if len(sample['frames']) > 0)
    it = iter(data)
    for _ in range(skip):
        next(it)
    state = data.state_dict(skip, True)  # what a checkpoint would record
    del it, data
    gc.collect()
    fresh = make()
    fresh.load_state_dict(state)
    return sum(1 for sample in fresh if len(sample['frames']) > 0)


def write_litdata(items: List[Dict], out: Path) -> None:
    import litdata
    litdata.optimize(fn=_litdata_item, inputs=items, output_dir=str(out), chunk_bytes='64MB', num_workers=1)


def _litdata_item(s: Dict) -> Dict:
    return {'id': s['id'], 'label': s['label'], 'frames': packed(s['frames'])}


def read_litdata(out: Path, skip: int = 0) -> int:
    import litdata
    data = litdata.StreamingDataset(str(out), shuffle=False)
    if skip:
        loader = litdata.StreamingDataLoader(data, batch_size=1, num_workers=0)
        state = {'dataset': None}
        return _litdata_resumed(loader, data, skip, state)
    return sum(1 for sample in data if len(sample['frames']) > 0)


def _litdata_resumed(loader, data, skip: int, state: Dict) -> int:
    import litdata
    for k, _ in enumerate(loader):
        if k + 1 == skip:
            state['dataset'] = loader.state_dict()
            break
    fresh = litdata.StreamingDataLoader(litdata.StreamingDataset(str(data.input_dir.path), shuffle=False),
                                        batch_size=1, num_workers=0)
    fresh.load_state_dict(state['dataset'])
    return sum(1 for _ in fresh)


ENGINES: Dict[str, tuple] = {'webdataset': (write_webdataset, read_webdataset, 'no (skip what was read)'),
                             'mosaicml-streaming': (write_mds, read_mds, 'yes (state_dict)'),
                             'litdata': (write_litdata, read_litdata, 'yes (state_dict)')}


def drop_page_cache() -> bool:
    """Empty the kernel's page cache (root only), so the first read comes from the disk; whether it could."""
    os.sync()
    try:
        Path('/proc/sys/vm/drop_caches').write_text('3\n')
        return True
    except OSError:
        return False


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob('*') if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--videos', type=int, default=400)
    parser.add_argument('--frames', type=int, default=24)
    parser.add_argument('--work_dir', type=Path, default=Path('/tmp/bench_shard_engines'))
    parser.add_argument('--media', type=Path, default=ROOT.parent / 'shared' / 'media')
    args = parser.parse_args()
    from importlib import metadata
    items = samples(args.media, args.videos, args.frames)
    total = sum(len(packed(s['frames'])) for s in items)
    print(f'# bench_shard_engines {time.strftime("%Y-%m-%d %H:%M")}, {platform.machine()}, {os.cpu_count()} CPUs; '
          f'{len(items)} samples of {args.frames} JPEG frames, {total / 2 ** 20:.0f} MB of frames; the page cache '
          f'{"is" if drop_page_cache() else "cannot be"} dropped before the 1st pass\n')
    print('| engine | version | write s | on disk MB | read samples/s (1st, 2nd pass) | MB/s (2nd) | resume built in | '
          'resumed from the middle |')
    print('|---|---|---|---|---|---|---|---|')
    for name, (write, read, resume) in ENGINES.items():
        out = args.work_dir / name
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        start = time.perf_counter()
        write(items, out)
        written = time.perf_counter() - start
        rates = []
        for attempt in range(2):
            if attempt == 0:
                drop_page_cache()
            start = time.perf_counter()
            n = read(out)
            rates.append(n / (time.perf_counter() - start))
        assert n == len(items), (name, n)
        rest = read(out, skip=len(items) // 2)
        version = metadata.version(name)
        print(f'| {name} | {version} | {written:.1f} | {size_of(out) / 2 ** 20:.0f} | {rates[0]:.0f}, {rates[1]:.0f} | '
              f'{rates[1] * total / len(items) / 2 ** 20:.0f} | {resume} | {rest} of {len(items) - len(items) // 2} |',
              flush=True)


if __name__ == '__main__':
    sys.exit(main())
