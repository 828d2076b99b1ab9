"""Long videos and live streams (issue 24): peak memory of a timeline, windows per second, live latency.

    python bench/bench_streams.py [--hours 1] [--seconds 60] [--work_dir /tmp/bench_streams]

Makes, from the real clips of ``shared/media`` scaled to 320 x 240 (``--media`` for another
folder), a video of ``--seconds`` and one of ``--hours`` (the clips looped, H.264 ultrafast,
25 fps), and two checkpoints with random weights: the demo's model (ResNet-10 at width 0.25,
8 x 56 x 56 clips, temporal stride 2) and a ResNet-18 at 112 px (16 x 112 x 112). Then, each
in a subprocess of its own:

- ``inference.py VIDEO --timeline`` on the short and the long video with the demo model: the
  peak resident memory (``ru_maxrss`` of the child) and the wall time (the memory must not
  grow with the length);
- the same on the short video with each model: windows per second and the real-time factor
  (wall seconds per second of video, start-up included; < 1 is faster than real time);
- ``inference.py --live VIDEO`` on the short video, played at its own rate, with each model:
  the summary line (windows, drops, latency from a window's last frame to its printed line).

Prints Markdown tables for docs/benchmarks.md.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conversion.writers import encode_video  # noqa: E402
from real_frames import media_frames  # noqa: E402
from models import generate_model, save_checkpoint  # noqa: E402
from preprocessing import Preprocessing  # noqa: E402

MODELS = {'demo ResNet-10 w0.25, 8 x 56², stride 2': (dict(model='resnet', model_depth=10, n_classes=6,
                                                          resnet_widen_factor=0.25), 56, 8, 2),
          'ResNet-18, 16 x 112²': (dict(model='resnet', model_depth=18, n_classes=400), 112, 16, 1)}


def looped(frames: List[np.ndarray], n: int):
    """``n`` frames: ``frames`` over and over, back and forth (no jump at the loop)."""
    cycle = frames + frames[::-1]
    return (cycle[i % len(cycle)] for i in range(n))


def make_video(path: Path, frames: List[np.ndarray], seconds: float) -> Path:
    """A 25 fps H.264 video of ``seconds`` (made once; kept for the next run)."""
    if not path.is_file():  # written under another name first: an interrupted run leaves no half video
        partial = path.with_name(path.stem + '.partial.mp4')
        encode_video(partial, looped(frames, int(seconds * 25)), 'libx264', 25, {'preset': 'ultrafast', 'g': '50'})
        partial.rename(path)
    return path


def make_checkpoints(work: Path) -> Dict[str, Path]:
    """A checkpoint with random weights per model of ``MODELS``."""
    out = {}
    for k, (name, (cfg, size, duration, t_stride)) in enumerate(MODELS.items()):
        path = work / f'model{k}.pth'
        names = [f'class{i}' for i in range(cfg['n_classes'])]
        prep = Preprocessing(sample_size=size, sample_duration=duration, sample_t_stride=t_stride)
        save_checkpoint(path, generate_model(**cfg).eval(), cfg, class_names=names, preprocessing=prep.to_dict())
        out[name] = path
    return out


def run(cmd: List[str]) -> Tuple[float, int, str, str]:
    """(wall seconds, peak RSS of that child in MB, stdout, stderr) of one command."""
    start = time.perf_counter()
    with tempfile.TemporaryFile('w+') as out, tempfile.TemporaryFile('w+') as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        raise SystemExit(f'{" ".join(cmd)} failed:\n{stderr}')
    return wall, usage.ru_maxrss // 1024, stdout, stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--hours', type=float, default=1.0)
    parser.add_argument('--seconds', type=float, default=60.0)
    parser.add_argument('--work_dir', type=Path, default=Path('/tmp/bench_streams'))
    parser.add_argument('--media', type=Path, default=ROOT.parent / 'shared' / 'media')
    args = parser.parse_args()
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    frames = media_frames(args.media)
    short = make_video(work / f'short_{args.seconds:g}s.mp4', frames, args.seconds)
    long = make_video(work / f'long_{args.hours:g}h.mp4', frames, args.hours * 3600)
    checkpoints = make_checkpoints(work)
    inference = [sys.executable, str(ROOT / 'inference.py')]
    print(f'# bench_streams {time.strftime("%Y-%m-%d %H:%M")}, {platform.machine()}, {os.cpu_count()} CPUs; '
          f'videos 320 x 240 at 25 fps\n')
    demo = next(iter(checkpoints))
    print('| video | model | wall s | peak RSS MB | windows |')
    print('|---|---|---|---|---|')
    for video, length in ((short, f'{args.seconds:g} s'), (long, f'{args.hours:g} h')):
        wall, rss, out, _ = run(inference + [str(video), '--resume_path', str(checkpoints[demo]),
                                             '--timeline', str(work / 'timeline')])
        windows = len(json.loads((work / 'timeline' / f'{video.stem}.timeline.json').read_text())['windows'])
        print(f'| {length} | {demo} | {wall:.1f} | {rss} | {windows} |', flush=True)
    print('\n| model | timeline windows/s | real-time factor (timeline) | live: summary |')
    print('|---|---|---|---|')
    for name, ckpt in checkpoints.items():
        wall, _, _, _ = run(inference + [str(short), '--resume_path', str(ckpt), '--timeline', str(work / 'tl2')])
        windows = len(json.loads((work / 'tl2' / f'{short.stem}.timeline.json').read_text())['windows'])
        _, _, _, err = run(inference + ['--live', str(short), '--resume_path', str(ckpt)])
        print(f'| {name} | {windows / wall:.1f} | {wall / args.seconds:.3f} | {err.strip().splitlines()[-1]} |',
              flush=True)


if __name__ == '__main__':
    main()
