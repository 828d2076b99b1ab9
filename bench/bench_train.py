"""Training and inference throughput: model-only and end to end, per precision mode and batch size.

    python bench/bench_train.py                                   # resnet-18, resnet-50, resnet2p1d-18
    python bench/bench_train.py --model resnet --model_depth 101 --batch_sizes 16 32 64
    python bench/bench_train.py --device cpu --archs resnet-18 --batch_sizes 4 --steps 3 --modes fp32

For each architecture at 3 x 16 x 112 x 112 (``--sample_duration``, ``--sample_size``) and each
mode (``fp32``, ``fp32+compile``, ``bf16`` autocast, ``bf16+cl`` with channels_last_3d, ``bf16+cl+compile``):

- model-only training: uint8 clips already on the device, normalised there, forward, backward,
  SGD step — clips/s, peak memory, GMACs per clip and achieved TFLOP/s (3 x forward FLOPs)
  against the device's peak where it is known;
- model-only inference: the same batch forward in eval mode under ``torch.inference_mode`` — clips/s;
- a batch-size sweep of the same, for the first mode (``--skip_sweep``: none);
- end to end: the real DataLoader from JPG (or ``--file_type hdf5``) frames with
  ``--workers`` workers, pinned memory and non-blocking copies, as main.py runs it —
  clips/s and its share of the model-only figure;
- video-level inference: sliding-window clips of whole videos, videos/s.

Data come from ``--data_dir`` (made by bench/bench_loader.py's converter if missing).
Prints Markdown tables for docs/benchmarks.md.
"""
import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import datasets  # noqa: E402
import opts  # noqa: E402
import spatial_transforms as st  # noqa: E402
from models import generate_model  # noqa: E402
from models.factory import MODEL_DEFAULTS  # noqa: E402
from models.precision import autocast
from preprocessing import to_device  # noqa: E402
from models.summary import summarize  # noqa: E402

# Dense peak TFLOP/s (bf16 tensor cores, fp32 non-tensor) of GPUs we may meet, by name.
PEAK_TFLOPS = {'H200': (989.0, 67.0), 'H100': (989.0, 67.0), 'A100': (312.0, 19.5), 'L40S': (362.0, 91.6),
               'A10': (125.0, 31.2), 'V100': (125.0, 15.7), '4090': (165.0, 82.6)}
MODES = {'fp32': (None, False, False), 'fp32+compile': (None, False, True),
         'bf16': (torch.bfloat16, False, False),
         'bf16+cl': (torch.bfloat16, True, False), 'bf16+cl+compile': (torch.bfloat16, True, True)}


def parse_arch(arch: str, widen_factor: float = 1.0) -> Dict:
    """'resnet2p1d-18' -> model options (the ResNet trunks ``widen_factor`` times as wide)."""
    model, depth = arch.rsplit('-', 1)
    return dict(MODEL_DEFAULTS, model=model, model_depth=int(depth), resnet_widen_factor=widen_factor)


def peak_tflops(device: torch.device, mode: str) -> Optional[float]:
    """The device's dense peak for the mode's math, or None if unknown."""
    if device.type != 'cuda':
        return None
    name = torch.cuda.get_device_name(device)
    for key, (bf16, fp32) in PEAK_TFLOPS.items():
        if key in name:
            return fp32 if mode == 'fp32' else bf16
    return None


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def build(options: Dict, device: torch.device, mode: str) -> Tuple[torch.nn.Module, torch.nn.Module]:
    """The model on ``device`` in the mode's memory format, and what to call (compiled or not)."""
    _, channels_last, compiled = MODES[mode]
    model = generate_model(**options).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    return model, (torch.compile(model) if compiled else model)


def train_steps(run: torch.nn.Module, model: torch.nn.Module, batches, device: torch.device, mode: str,
                normalize, steps: int, warmup: int) -> Tuple[float, float]:
    """clips/s over ``steps`` training steps after ``warmup``, and the seconds of the warm-up (compiling, if any)."""
    dtype, channels_last, _ = MODES[mode]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    clips, began = 0, time.perf_counter()
    start = began
    for i in range(warmup + steps):
        if i == warmup:
            synchronize(device)
            start = time.perf_counter()
        x_u8, y = next(batches)
        x = to_device(x_u8, device, normalize, channels_last)
        with autocast(device, dtype):
            loss = F.cross_entropy(run(x).float(), y.to(device, non_blocking=True))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            clips += x.shape[0]
    synchronize(device)
    return clips / (time.perf_counter() - start), start - began


def infer_steps(run: torch.nn.Module, model: torch.nn.Module, batches, device: torch.device, mode: str,
                normalize, steps: int, warmup: int) -> Tuple[float, float]:
    """Inference clips/s (eval mode, ``torch.inference_mode``) over ``steps`` forward passes after ``warmup``,
    and the seconds of the warm-up."""
    dtype, channels_last, _ = MODES[mode]
    model.eval()
    clips, began = 0, time.perf_counter()
    start = began
    with torch.inference_mode():
        for i in range(warmup + steps):
            if i == warmup:
                synchronize(device)
                start = time.perf_counter()
            x = to_device(next(batches)[0], device, normalize, channels_last)
            with autocast(device, dtype):
                run(x).float()
            clips += x.shape[0] if i >= warmup else 0
    synchronize(device)
    return clips / (time.perf_counter() - start), start - began


def resident(batch: int, options: Dict, size: int, duration: int, device: torch.device):
    """The same uint8 batch, already on the device, forever."""
    x = torch.randint(0, 256, (batch, 3, duration, size, size), dtype=torch.uint8, device=device)
    y = torch.randint(0, options['n_classes'], (batch,), device=device)
    while True:
        yield x, y


def from_loader(loader):
    """Batches of a DataLoader, epoch after epoch, as (uint8 clips, labels)."""
    while True:
        for batch in loader:
            if batch['clip'] is not None:
                yield batch['clip'], batch['label']


def peak_memory_gib(device: torch.device) -> Optional[float]:
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == 'cuda' else None


def fmt(value: Optional[float], digits: int = 1) -> str:
    return '-' if value is None else f'{value:.{digits}f}'


def main(argv: Optional[List[str]] = None) -> int:
    """Run the benchmarks and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--archs', nargs='+', default=['resnet-18', 'resnet-50', 'resnet2p1d-18'])
    parser.add_argument('--model', default=None, help='with --model_depth: one architecture instead of --archs')
    parser.add_argument('--model_depth', type=int, default=None)
    parser.add_argument('--widen_factor', type=float, default=1.0, help='--resnet_widen_factor of the ResNets')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--modes', nargs='+', default=list(MODES), choices=list(MODES))
    parser.add_argument('--batch_size', type=int, default=32, help='batch of the per-mode table')
    parser.add_argument('--batch_sizes', type=int, nargs='+', default=[8, 16, 32, 64], help='the sweep')
    parser.add_argument('--steps', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--sample_size', type=int, default=112)
    parser.add_argument('--sample_duration', type=int, default=16)
    parser.add_argument('--data_dir', type=Path, default=Path('/tmp/bench_data'))
    parser.add_argument('--file_type', default='jpg', choices=['jpg', 'hdf5'])
    parser.add_argument('--annotation_path', type=Path, default=None,
                        help='end to end on a prepared dataset: this annotation file, its videos in --data_dir')
    parser.add_argument('--workers', type=int, default=16)
    parser.add_argument('--skip_end_to_end', action='store_true')
    parser.add_argument('--skip_sweep', action='store_true', help='no batch-size sweep')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = True
    archs = [f'{args.model}-{args.model_depth}'] if args.model else args.archs
    normalize = st.ClipNormalize(*st.get_mean_std())
    size, duration = args.sample_size, args.sample_duration
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else (platform.processor() or 'CPU')
    print(f'# bench_train  {time.strftime("%Y-%m-%d")}  {name}, torch {torch.__version__}, '
          f'clips 3x{duration}x{size}x{size}\n')

    print('| model | mode | batch | clips/s | inference clips/s | warm-up s (train, inference) | peak GiB | '
          'GMACs/clip | TFLOP/s | % of peak |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    model_only: Dict[Tuple[str, str], float] = {}
    for arch in archs:
        options = parse_arch(arch, args.widen_factor)
        gmacs = summarize(options, size, duration)['gmacs']
        for mode in args.modes:
            if device.type == 'cuda':
                torch.cuda.reset_peak_memory_stats(device)
            model, run = build(options, device, mode)
            rate, warm = train_steps(run, model, resident(args.batch_size, options, size, duration, device),
                                     device, mode, normalize, args.steps, args.warmup)
            model_only[arch, mode] = rate
            inference, infer_warm = infer_steps(run, model, resident(args.batch_size, options, size, duration, device),
                                                device, mode, normalize, args.steps, args.warmup)
            tflops = 3 * 2 * gmacs * 1e9 * rate / 1e12
            peak = peak_tflops(device, mode)
            print(f'| {arch} | {mode} | {args.batch_size} | {rate:.1f} | {inference:.1f} | '
                  f'{warm:.1f}, {infer_warm:.1f} | '
                  f'{fmt(peak_memory_gib(device), 2)} | '
                  f"{gmacs:.2f} | {tflops:.2f} | {fmt(100 * tflops / peak, 0) + '%' if peak else '-'} |", flush=True)
            del model, run

    mode = args.modes[0]
    if not args.skip_sweep:
        print(f'\n| model | batch-size sweep ({mode}) | ' + ' | '.join(str(b) for b in args.batch_sizes) + ' |')
        print('|---|---|' + '---|' * len(args.batch_sizes))
    for arch in [] if args.skip_sweep else archs:
        options = parse_arch(arch, args.widen_factor)
        row = []
        for batch in args.batch_sizes:
            try:
                model, run = build(options, device, mode)
                rate, _ = train_steps(run, model, resident(batch, options, size, duration, device), device, mode,
                                      normalize, args.steps, args.warmup)
                row.append(f'{rate:.1f}')
            except torch.cuda.OutOfMemoryError:
                row.append('OOM')
            finally:
                if device.type == 'cuda':
                    torch.cuda.empty_cache()
        print(f'| {arch} | clips/s | ' + ' | '.join(row) + ' |', flush=True)

    if args.skip_end_to_end:
        return 0
    if args.annotation_path is None and not (args.data_dir / f'{args.file_type}.json').exists():
        from bench.bench_loader import prepare
        prepare(args.data_dir, n_videos=32, n_frames=96)
    paths = (args.data_dir, args.annotation_path) if args.annotation_path else \
        (args.data_dir / args.file_type, args.data_dir / f'{args.file_type}.json')
    base = ['--video_path', str(paths[0]), '--annotation_path', str(paths[1]), '--file_type', args.file_type,
            '--sample_size', str(size), '--sample_duration', str(duration), '--n_classes', '2']
    train = datasets.get_training_data(opts.parse_opts(base))
    n_classes = len(train.class_names)
    pin = device.type == 'cuda'
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.workers, collate_fn=datasets.collate, pin_memory=pin,
                                         persistent_workers=args.workers > 0,
                                         prefetch_factor=4 if args.workers > 0 else None)
    print(f'\n| model | mode | end-to-end clips/s ({args.file_type}, {args.workers} workers) | % of model-only |')
    print('|---|---|---|---|')
    for arch in archs:
        options = dict(parse_arch(arch, args.widen_factor), n_classes=n_classes)
        model, run = build(options, device, mode)
        rate, _ = train_steps(run, model, from_loader(loader), device, mode, normalize, args.steps, args.warmup)
        print(f'| {arch} | {mode} | {rate:.1f} | {100 * rate / model_only[arch, mode]:.0f}% |', flush=True)

    infer = datasets.get_inference_data(opts.parse_opts(base + ['--inference_subset', 'train']))
    infer_loader = torch.utils.data.DataLoader(infer, batch_size=4, num_workers=args.workers,
                                               collate_fn=datasets.collate, pin_memory=pin)
    print('\n| model | mode | inference videos/s | clips/s |')
    print('|---|---|---|---|')
    dtype, channels_last, _ = MODES[mode]
    for arch in archs:
        model, run = build(dict(parse_arch(arch, args.widen_factor), n_classes=n_classes), device, mode)
        model.eval()
        videos = clips = 0
        synchronize(device)
        start = time.perf_counter()
        with torch.no_grad():
            for batch in infer_loader:
                if batch['clip'] is None:
                    continue
                x = to_device(batch['clip'], device, normalize, channels_last)
                with autocast(device, dtype):
                    F.softmax(run(x).float(), 1).cpu()
                videos += len(set(batch['video_id']))
                clips += x.shape[0]
        synchronize(device)
        elapsed = time.perf_counter() - start
        print(f'| {arch} | {mode} | {videos / elapsed:.2f} | {clips / elapsed:.1f} |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
