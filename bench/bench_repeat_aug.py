"""Training-clip loading with repeated augmentation (``--repeat_aug K``) on real camera frames.

    python bench/bench_repeat_aug.py [--k 1 2 4] [--seconds 6] [--videos 8] [--frames 48]

Cuts ``--videos`` videos of ``--frames`` frames from the real clips in ``../shared/media``
(bikes.mp4, run.mp4; frames scaled to a 240-pixel short side), stores them as JPG frame folders
(quality 90) and as mp4 files (H.264 written with PyAV), and for each K measures, on one core
(one process, no DataLoader worker, one torch thread), the training clips per second that
``datasets.get_training_data`` gives with the default training options (random resized crop to
112 x 112, 16 frames, JPEGs decoded at the crop's scale): K clips per read of a video, the
frames decoded once. Prints a Markdown table for docs/benchmarks.md.
"""
import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import av
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import datasets  # noqa: E402
from datasets.samplers import sample_seed  # noqa: E402
from opts import parse_opts  # noqa: E402

MEDIA = ROOT.parent / 'shared' / 'media'


def real_frames(n_videos: int, n_frames: int) -> List[List]:
    """``n_videos`` runs of ``n_frames`` consecutive real frames (PIL images, 240-pixel short side)."""
    runs, sources = [], sorted(MEDIA.glob('*.mp4'))
    for source in sources:
        with av.open(str(source)) as container:
            frames = [f.to_image() for f in container.decode(video=0)]
        for start in range(0, len(frames) - n_frames + 1, n_frames):
            runs.append([im.resize((2 * round(im.width * 120 / im.height), 240)) for im in frames[start:start + n_frames]])
    if len(runs) < n_videos:
        raise SystemExit(f'{MEDIA}: only {len(runs)} runs of {n_frames} frames')
    step = len(runs) / n_videos
    return [runs[int(k * step)] for k in range(n_videos)]


def write_data(root: Path, videos: List[List]) -> None:
    """JPG folders and mp4 files under ``root``, with a UCF-101-style annotation each (``jpg.json``, ``video.json``:
    the original's frame numbers, from 1 for JPG folders, from 0 for video files)."""
    database = {}
    for k, frames in enumerate(videos):
        vid = f'real_{k}'
        folder = root / 'jpg' / 'real' / vid
        folder.mkdir(parents=True)
        for i, im in enumerate(frames, 1):
            im.save(folder / f'image_{i:05d}.jpg', quality=90)
        (root / 'video' / 'real').mkdir(parents=True, exist_ok=True)
        with av.open(str(root / 'video' / 'real' / f'{vid}.mp4'), 'w') as out:
            stream = out.add_stream('libx264', rate=25)
            stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, 'yuv420p'
            for im in frames:
                out.mux(stream.encode(av.VideoFrame.from_image(im)))
            out.mux(stream.encode())
        database[vid] = len(frames)
    for file_type, first in (('jpg', 1), ('video', 0)):
        entries = {vid: {'subset': 'training', 'annotations': {'label': 'real', 'segment': [first, n + first]}}
                   for vid, n in database.items()}
        (root / f'{file_type}.json').write_text(json.dumps({'labels': ['real'], 'database': entries}))


def clips_per_s(root: Path, file_type: str, k: int, seconds: float) -> float:
    """Training clips per second from one process, ``k`` clips per read."""
    opt = parse_opts(['--video_path', str(root / file_type), '--annotation_path', str(root / f'{file_type}.json'),
                      '--result_path',
                      str(root / 'r'), '--n_classes', '1', '--file_type', file_type, '--repeat_aug', str(k)])
    data = datasets.get_training_data(opt)
    clips, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        sample = data[(i % len(data), sample_seed(1, 1, i), ())]
        clips += len(sample['clips']) if 'clips' in sample else 1
        i += 1
    return clips / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--k', type=int, nargs='+', default=[1, 2, 4])
    parser.add_argument('--seconds', type=float, default=6.0)
    parser.add_argument('--videos', type=int, default=8)
    parser.add_argument('--frames', type=int, default=48)  # 8 runs of 48 in the two clips of ../shared/media
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_data(root, real_frames(args.videos, args.frames))
        print(f'{time.strftime("%Y-%m-%d")}, {platform.processor() or platform.machine()}, torch '
              f'{torch.__version__}: {args.videos} real videos of {args.frames} frames, 240-pixel short side\n')
        print('| storage | K | clips/s | per clip vs K = 1 |\n|---|---|---|---|')
        for file_type in ('jpg', 'video'):
            base = None
            for k in args.k:
                rate = clips_per_s(root, file_type, k, args.seconds)
                base = base or rate
                print(f'| {file_type} | {k} | {rate:.1f} | {base / rate:.2f}x the time |', flush=True)


if __name__ == '__main__':
    main()
