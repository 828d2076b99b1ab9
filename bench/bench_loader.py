"""Clip-loading throughput: our jpg, hdf5 and video pipelines against the original's and the floor.

    python bench/bench_loader.py [--videos 8] [--frames 96] [--seconds 4] [--workers 1 2] [--content textured|smooth]

Makes ``--videos`` synthetic 320x240 source videos with textured moving content, converts
them with the real tools (generate_video_jpgs, generate_video_hdf5, generate_video_mp4
--gop 16, folder_json), then measures on one core (one process, one torch thread):

- reference: a per-frame PIL pipeline written the way the original works (open + convert
  each JPEG, the same crop box resized per frame, flip, ToTensor, Normalize per frame);
- floor: only reading and decoding the clip's 16 JPEGs with torchvision.io.decode_jpeg;
- ours: ``datasets.get_training_data`` / ``get_validation_data`` items for each storage
  (uint8 clips, normalised later on the device; also shown with normalisation in the worker):
  320x240 JPEGs decoded at full size (``--jpeg_decode full``) and at the crop's scale (the
  default), the same frames stored at a 128-pixel short side (``generate_video_jpgs --size
  128``), HDF5, and short-GOP mp4 files, these both warm (index and file kept from an earlier
  read) and cold (``cold``: as at Kinetics scale, where each video is read once per epoch),
  with the frame tables ``generate_video_mp4`` stores beside the videos and without them;

the disk each storage takes, and how a DataLoader scales with 1, 2, ... workers. Prints
Markdown tables for docs/benchmarks.md, and the issue-15 targets (one core, ratios to the reference).
"""
import argparse
import io
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datasets  # noqa: E402
import opts  # noqa: E402
import spatial_transforms as st  # noqa: E402
from conversion.writers import encode_video  # noqa: E402
from datasets.decode import decode_image  # noqa: E402
from util_scripts import folder_json, generate_video_hdf5, generate_video_jpgs, generate_video_mp4  # noqa: E402

WIDTH, HEIGHT, SIZE, DURATION = 320, 240, 112, 16


def make_sources(root: Path, n_videos: int, n_frames: int, content: str = 'textured') -> None:
    """Moving 320x240 H.264 videos (default GOP) in two class folders.

    ``textured``: random detail at every 8 pixels plus per-frame noise (about 25 KB per frame
    as a quality-90 JPEG, a busy scene); ``smooth``: detail falling off with frequency as in
    camera footage, octave by octave (about 13 KB per frame).
    """
    rng = np.random.default_rng(0)
    for v in range(n_videos):
        path = root / f'class{v % 2}' / f'video{v}.mp4'
        path.parent.mkdir(parents=True, exist_ok=True)
        base = _octaves(rng) if content == 'smooth' else _textured(rng)
        encode_video(path, _moving(base, n_frames, rng, noise=4 if content == 'textured' else 1),
                     'libx264', 25, {'crf': '20'})


def _textured(rng: np.random.Generator) -> np.ndarray:
    coarse = rng.integers(0, 255, (HEIGHT // 8 + 2, WIDTH // 8 + 2, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((WIDTH + 16, HEIGHT + 16), Image.BICUBIC)).astype(np.int16)


def _octaves(rng: np.random.Generator) -> np.ndarray:
    size = (WIDTH + 16, HEIGHT + 16)
    image = np.zeros((HEIGHT + 16, WIDTH + 16, 3))
    for k, cells in enumerate((4, 8, 16, 32, 64)):
        coarse = rng.normal(0, 1, (max(2, HEIGHT * cells // 256), max(2, WIDTH * cells // 256), 3))
        scaled = ((coarse - coarse.min()) / np.ptp(coarse) * 255).astype(np.uint8)
        image += (np.asarray(Image.fromarray(scaled).resize(size, Image.BICUBIC), float) - 128) / (k + 1)
    return np.clip(image / image.std() * 40 + 128, 0, 255).astype(np.int16)


def _moving(base: np.ndarray, n_frames: int, rng: np.random.Generator, noise: int) -> Iterator[np.ndarray]:
    for t in range(n_frames):
        dx, dy = t % 16, (t // 2) % 16
        frame = base[dy:dy + HEIGHT, dx:dx + WIDTH] + rng.integers(-noise, noise + 1, (HEIGHT, WIDTH, 3))
        yield np.clip(frame, 0, 255).astype(np.uint8)


FORMATS = {'jpg': 'jpg', 'jpg128': 'jpg', 'hdf5': 'hdf5', 'video': 'video'}  # storage -> --file_type


def prepare(root: Path, n_videos: int, n_frames: int, content: str) -> Dict[str, Path]:
    """Convert the sources to every storage format and build one annotation file per format."""
    make_sources(root / 'src', n_videos, n_frames, content)
    quiet = io.StringIO()
    stdout, sys.stdout = sys.stdout, quiet
    try:
        generate_video_jpgs.main([str(root / 'src'), str(root / 'jpg'), 'kinetics', '--n_jobs', '1'])
        generate_video_jpgs.main([str(root / 'src'), str(root / 'jpg128'), 'kinetics', '--n_jobs', '1',
                                  '--size', '128'])
        generate_video_hdf5.main([str(root / 'src'), str(root / 'hdf5'), 'kinetics', '--n_jobs', '1'])
        generate_video_mp4.main([str(root / 'src'), str(root / 'video'), 'kinetics', '--n_jobs', '1',
                                 '--gop', '16'])
        for name, ft in FORMATS.items():
            folder_json.main([str(root / name), str(root / f'{name}.json'), '--file_type', ft,
                              '--val_fraction', '0.5'])
    finally:
        sys.stdout = stdout
    return {name: root / name for name in FORMATS}


def disk_mb(folder: Path) -> float:
    """Bytes of the files under ``folder``, in MB."""
    return sum(p.stat().st_size for p in folder.rglob('*') if p.is_file()) / 1e6


def cold(dataset: torch.utils.data.Dataset, stored: bool = True) -> Callable[[int], dict]:
    """Items of a video-file dataset as at Kinetics scale, where a worker reads each video once per
    epoch: no frame index, no open file and no cached frame table left from an earlier read; with
    ``stored`` False the tables stored beside the videos are not read either (built every time)."""
    from datasets.formats import frame_table_file, video_files

    def item(i: int) -> dict:
        dataset.loader = type(dataset.loader)(planar=dataset.loader.planar)
        video_files._cached_table.cache_clear()
        read, frame_table_file.read = frame_table_file.read, (frame_table_file.read if stored else lambda path: None)
        try:
            return dataset[i]
        finally:
            frame_table_file.read = read
    return item


def rate(fn: Callable[[], int], seconds: float) -> float:
    """Items per second of ``fn`` (which returns how many clips it made), after one warm-up call."""
    fn()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        count += fn()
    return count / (time.perf_counter() - start)


def median_ms(fn: Callable[[], object], n: int = 200) -> float:
    """Median wall time of ``fn`` in milliseconds."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def endless(loader: torch.utils.data.DataLoader) -> Iterator[dict]:
    """Batches of ``loader``, epoch after epoch."""
    while True:
        yield from loader


def frame_folders(root: Path) -> List[Path]:
    return sorted(p for p in root.glob('*/*') if p.is_dir())


def reference_train_clip(folder: Path, n_frames: int, mean, std) -> torch.Tensor:
    """The original's training path: per-frame PIL decode, crop+resize, flip, ToTensor, Normalize."""
    begin = random.randint(0, n_frames - DURATION)
    images = [Image.open(folder / f'image_{i:05d}.jpg').convert('RGB') for i in range(begin + 1, begin + DURATION + 1)]
    crop = st.RandomResizedCrop(SIZE)
    top, left, h, w = crop.get_params(images[0].height, images[0].width, random.Random(random.getrandbits(64)))
    flip = random.random() < 0.5
    mean_t = torch.tensor(mean).view(3, 1, 1)
    std_t = torch.tensor(std).view(3, 1, 1)
    out = []
    for img in images:
        img = img.crop((left, top, left + w, top + h)).resize((SIZE, SIZE), Image.BILINEAR)
        if flip:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        t = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255)
        out.append((t - mean_t) / std_t)
    return torch.stack(out, 1)


def reference_val_clips(folder: Path, n_frames: int, mean, std, n_clips: int = 3) -> int:
    """The original's validation path: per-frame Resize + CenterCrop, n evenly spaced clips."""
    step = max(1, (n_frames - DURATION) // max(1, n_clips - 1))
    mean_t = torch.tensor(mean).view(3, 1, 1)
    std_t = torch.tensor(std).view(3, 1, 1)
    for c in range(n_clips):
        frames = []
        for i in range(c * step + 1, c * step + DURATION + 1):
            img = Image.open(folder / f'image_{i:05d}.jpg').convert('RGB')
            w, h = img.size
            img = img.resize((int(SIZE * w / h), SIZE), Image.BILINEAR)
            left = (img.width - SIZE) // 2
            img = img.crop((left, 0, left + SIZE, SIZE))
            t = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float().div(255)
            frames.append((t - mean_t) / std_t)
        torch.stack(frames, 1)
    return n_clips


def decode_floor_clip(folder: Path, n_frames: int) -> None:
    """Only read and decode the clip's 16 JPEGs."""
    begin = random.randint(0, n_frames - DURATION)
    for i in range(begin + 1, begin + DURATION + 1):
        decode_image((folder / f'image_{i:05d}.jpg').read_bytes())


def video_breakdown(files: List[Path], n_frames: int, clips: int = 48) -> Dict[str, float]:
    """Milliseconds of CPU per cold short-GOP mp4 training clip, stage by stage (16 frames, 112 crop).

    Cold as at Kinetics scale: each clip opens its file and builds its frame table (demux +
    the head decode that proves packets are frames, ``video_files.frame_table``), or reads the
    one stored beside the video (``frame_table_file``; both are timed); then the
    loader seeks and decodes to the clip's last frame, packing 4:2:0 planes; then the crop is
    resized and colour-converted (``PlanarClip.crop_resized``).
    """
    from datasets.formats import video_files
    from datasets.video_loader import VideoLoader
    rng = random.Random(0)
    stages = {'open + probe (timed apart: each later stage opens the file itself)': 0.0,
              'frame table built (demux + head decode)': 0.0,
              'frame table stored (read + check)': 0.0,
              'seek + decode + pack planes (open again)': 0.0, 'crop + resize + YUV->RGB': 0.0}
    crop = st.RandomResizedCrop(SIZE)
    for k in range(clips):
        path = files[k % len(files)]
        video_files._cached_table.cache_clear()
        t0 = time.process_time()
        video_files.open_video(path).close()
        t1 = time.process_time()
        video_files._built_table(path)
        t2 = time.process_time()
        table = video_files.frame_table(path)  # the stored table (the run's files have one)
        t2b = time.process_time()
        begin = rng.randint(0, min(n_frames, len(table)) - DURATION)
        clip, _ = VideoLoader(planar=True)(path, list(range(begin, begin + DURATION)))
        t3 = time.process_time()
        crop(clip, rng)
        t4 = time.process_time()
        for name, dt in zip(stages, (t1 - t0, t2 - t1, t2b - t2, t3 - t2b, t4 - t3)):
            stages[name] += 1000 * dt / clips
    return stages


def main(argv=None) -> int:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--videos', type=int, default=8)
    parser.add_argument('--frames', type=int, default=96)
    parser.add_argument('--seconds', type=float, default=4.0, help='time per measurement')
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    parser.add_argument('--data_dir', type=Path, default=None, help='keep the converted data here')
    parser.add_argument('--content', choices=['textured', 'smooth'], default='textured',
                        help='what the synthetic videos show (see make_sources); JPEG decoding cost follows it')
    parser.add_argument('--json', type=Path, default=None, help='also write the numbers as JSON')
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    random.seed(0)

    tmp = tempfile.TemporaryDirectory() if args.data_dir is None else None
    root = args.data_dir or Path(tmp.name)
    roots = prepare(root, args.videos, args.frames, args.content) if not (root / 'jpg128.json').exists() else \
        {name: root / name for name in FORMATS}
    folders = frame_folders(roots['jpg'])
    sample_jpg = (folders[0] / 'image_00001.jpg')
    mean, std = st.get_mean_std()
    results: Dict[str, float] = {}

    data = sample_jpg.read_bytes()
    per_frame_ms = median_ms(lambda: decode_image(data))
    n_frames = min(len(list(f.glob('image_*.jpg'))) for f in folders)

    def cycle(fn_per_item: Callable[[int], int], n_items: int) -> Callable[[], int]:
        state = {'i': 0}

        def step() -> int:
            state['i'] = (state['i'] + 1) % n_items
            return fn_per_item(state['i'])
        return step

    results['reference train'] = rate(cycle(lambda i: (reference_train_clip(folders[i], n_frames, mean, std), 1)[1],
                                            len(folders)), args.seconds)
    results['decode floor (16 JPEGs)'] = rate(cycle(lambda i: (decode_floor_clip(folders[i], n_frames), 1)[1],
                                                    len(folders)), args.seconds)
    results['reference val'] = rate(cycle(lambda i: reference_val_clips(folders[i], n_frames, mean, std),
                                          len(folders)), args.seconds)
    loaders = {}
    runs = [('jpg', 'full'), ('jpg', 'scaled'), ('jpg128', 'scaled'), ('hdf5', 'scaled'), ('video', '')]
    for name, decode in runs:
        ft = FORMATS[name]
        opt = opts.parse_opts(['--video_path', str(roots[name]), '--annotation_path', str(root / f'{name}.json'),
                               '--file_type', ft] + (['--jpeg_decode', decode] if decode else []))
        train = datasets.get_training_data(opt)
        val = datasets.get_validation_data(opt)
        norm = datasets.get_normalization(opt)
        label = f'{name}, {decode} decode' if decode else f'{name} (short-GOP mp4)'
        results[f'ours train {label}'] = rate(cycle(lambda i, d=train: (d[i], 1)[1], len(train)), args.seconds)
        if name == 'jpg' and decode == 'scaled':
            results[f'ours train {label} + normalise in worker'] = rate(
                cycle(lambda i, d=train: (norm(d[i]['clip']), 1)[1], len(train)), args.seconds)
        results[f'ours val {label}'] = rate(cycle(lambda i, d=val: len(d[i]['clips']), len(val)), args.seconds)
        if ft == 'video':
            for stored, tag in ((True, 'cold'), (False, 'cold, no stored frame table')):
                results[f'ours train {label}, {tag}'] = rate(
                    cycle(lambda i, d=cold(train, stored): (d(i), 1)[1], len(train)), args.seconds)
                results[f'ours val {label}, {tag}'] = rate(
                    cycle(lambda i, d=cold(val, stored): len(d(i)['clips']), len(val)), args.seconds)
        if decode != 'full':
            loaders[name] = datasets.get_training_data(opt)

    scaling: Dict[str, Dict[int, float]] = {}
    for ft, train in loaders.items():
        scaling[ft] = {}
        for k in args.workers:
            loader = torch.utils.data.DataLoader(train, batch_size=8, shuffle=True, num_workers=k,
                                                 collate_fn=datasets.collate, persistent_workers=True,
                                                 prefetch_factor=4)
            stream = endless(loader)
            scaling[ft][k] = rate(lambda s=stream: len(next(s)['video_id']), args.seconds)
            del stream, loader

    breakdown = video_breakdown(sorted(roots['video'].glob('*/*.mp4')), n_frames)
    ref = results['reference train']
    floor = results['decode floor (16 JPEGs)']
    print(f'# bench_loader  {time.strftime("%Y-%m-%d")}  {platform.processor() or platform.machine()}, '
          f'torch {torch.__version__}, one core')
    print(f'{args.content} content: one 320x240 JPEG of {len(data) / 1000:.1f} KB decodes in {per_frame_ms:.2f} ms '
          '(median)\n')
    print('| pipeline (1 core) | clips/s | x reference | % of decode floor |')
    print('|---|---|---|---|')
    for name, value in results.items():
        base = results['reference val'] if ' val' in name else ref
        print(f'| {name} | {value:.1f} | {value / base:.2f} | {100 * value / floor:.0f}% |')
    targets = [('ours val jpg, scaled decode', 4.0), ('ours train jpg, scaled decode', 2.5),
               ('ours train video (short-GOP mp4)', 2.5), ('ours train video (short-GOP mp4), cold', 2.5),
               ('ours train video (short-GOP mp4), cold, no stored frame table', 2.5)]
    print('\n| target (x reference) | measured | goal |\n|---|---|---|')
    for name, goal in targets:
        base = results['reference val'] if ' val' in name else ref
        print(f'| {name} | {results[name] / base:.2f} | {goal} |')
    print('\n| cold short-GOP mp4 training clip, stage | CPU ms |\n|---|---|')
    for name, ms in breakdown.items():
        print(f'| {name} | {ms:.1f} |')
    opened, built, stored = (breakdown[k] for k in list(breakdown)[:3])
    print(f'| total, table built | {sum(breakdown.values()) - opened - stored:.1f} |')
    print(f'| total, table stored | {sum(breakdown.values()) - opened - built:.1f} |')
    print('\n| storage | disk (MB) |\n|---|---|')
    for name in FORMATS:
        print(f'| {name} | {disk_mb(roots[name]):.1f} |')
    print('\n| DataLoader workers (training, batch 8) | ' + ' | '.join(str(k) for k in args.workers) + ' |')
    print('|---|' + '---|' * len(args.workers))
    for ft, row in scaling.items():
        print(f'| {ft} | ' + ' | '.join(f'{row[k]:.1f}' for k in args.workers) + ' |')
    if args.json:
        args.json.write_text(json.dumps({'per_core': results, 'workers': scaling, 'video_breakdown_ms': breakdown,
                                         'jpeg_decode_ms': per_frame_ms}, indent=1))
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == '__main__':
    sys.exit(main())
