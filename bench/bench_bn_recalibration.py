"""How many full-shape batches ``--multigrid``'s BatchNorm recalibration needs, and what each costs.

    python bench/bench_bn_recalibration.py RUN_DIR [--epochs 10 20 30] [--batches 1 2 4 8 16 32]

``RUN_DIR`` is a finished ``main.py --multigrid`` run (e.g. one of ``bench_time_to_accuracy.py``'s
result folders) with ``save_<epoch>.pth`` after coarse epochs. For each such checkpoint and each
count N, the checkpoint's BatchNorm statistics are re-estimated on N batches of full-shape training
clips (``datasets.multigrid.calibration_items``, as ``main.py`` draws them) and the model is
validated; printed: video top-1, validation loss and the seconds the recalibration took (its
loader's start included, as in a run). The run's own options (``--config`` of its ``opts.json``) give
the data, model and math. A Markdown table for docs/benchmarks.md.
"""
import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import main as m  # noqa: E402
from datasets.device_decode import data_loader  # noqa: E402
from datasets.multigrid import calibration_items, calibration_videos  # noqa: E402
from opts import parse_opts  # noqa: E402
from preprocessing import Preprocessing, normalization  # noqa: E402
from runs.run_state import RunState, resume_checkpoint  # noqa: E402
from training import criterion_for, recalibrate_batchnorm  # noqa: E402
from validation import val_epoch, video_metrics  # noqa: E402


def measure(run_dir: Path, epoch: int, counts: List[int], work: Path) -> List[tuple]:
    """(batches, clips seen, video top-1, validation loss, recalibration seconds) per count, for one checkpoint."""
    opt = parse_opts(['--config', str(run_dir / 'opts.json'), '--result_path', str(work), '--resume_path',
                      str(run_dir / f'save_{epoch}.pth'), '--no_progress'])  # the run's own options
    proc = m.setup(opt, 0, 1, 0, 1)
    ckpt = resume_checkpoint(opt, rank=0)
    model, options, ft = m.build_model(opt, ckpt, proc)
    prep = m.resumed_preprocessing(opt, ckpt, say=False)
    math = m.run_math(opt, model, prep, ckpt, proc.device, 0, 1)
    model = m.place_model(model, opt, proc.device, math.train.channels_last)
    state = RunState.for_options(opt, model, options, prep.to_dict(), ft, proc.device, math)
    data = m.make_data(opt, proc, state)
    normalize = normalization(Preprocessing(**state.preprocessing))
    criterion = criterion_for(opt.multilabel, opt.label_smoothing)
    train_data = data.train.dataset
    rows = []
    for n in counts:
        state.restore(ckpt, 'bench', training=False)
        items = calibration_items(len(train_data), opt.manual_seed,
                                  calibration_videos(n, data.per_rank_batch, opt.repeat_aug), 0, 1)
        start = time.perf_counter()
        loader = data_loader(train_data, proc.device, False, batch_size=data.batching.videos, sampler=items,
                             **dict(data.loader_args, persistent_workers=False))
        clips = recalibrate_batchnorm(state.model, loader, proc.device, normalize, amp_dtype=math.train.dtype,
                                      channels_last=math.train.channels_last)
        seconds = time.perf_counter() - start
        m.set_layout(state.model, math.inference.channels_last)
        v = val_epoch(epoch, data.val, state.model, criterion, proc.device, normalize,
                      amp_dtype=math.inference.dtype, channels_last=math.inference.channels_last, show_progress=False)
        top1 = video_metrics(v['videos'])['video_top1']
        rows.append((n, clips, top1, v['loss_sum'] / max(v['clips'], 1), seconds))
        m.set_layout(state.model, math.train.channels_last)
    return rows


def main(argv: Optional[List[str]] = None) -> int:
    """Print the table for the run and checkpoints of ``argv``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('run_dir', type=Path)
    p.add_argument('--epochs', type=int, nargs='+', default=[10, 20, 30])
    p.add_argument('--batches', type=int, nargs='+', default=[1, 2, 4, 8, 16, 32])
    args = p.parse_args(argv)
    print(f'- Date: {time.strftime("%Y-%m-%d %H:%M")}. CPU: {platform.processor() or platform.machine()}, '
          f'{torch.get_num_threads()} threads; torch {torch.__version__}.')
    print(f'- Command: `python bench/bench_bn_recalibration.py {" ".join(sys.argv[1:])}`\n')
    print('| checkpoint | batches | clips | video top-1 | val loss | recalibration s |')
    print('|---|---|---|---|---|---|')
    with tempfile.TemporaryDirectory() as tmp:
        for epoch in args.epochs:
            for n, clips, top1, loss, seconds in measure(args.run_dir, epoch, args.batches, Path(tmp)):
                print(f'| save_{epoch} | {n} | {clips} | {top1:.1%} | {loss:.3f} | {seconds:.3f} |', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
