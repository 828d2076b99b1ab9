"""Time to accuracy (issue 23): training recipes and math against the plain recipe's final video top-1.

    python bench/bench_time_to_accuracy.py [--tasks demo moving moving16] [--recipes plain multigrid multigrid+ra2]
        [--maths default fp32] [--epochs N] [--repeat N] [--work_dir DIR] [--data_root DIR] [--main_flags='...']
    python bench/bench_time_to_accuracy.py --profile [--tasks moving] [--recipes plain] [--maths default]

Tasks: ``demo`` (``demo.DEMO_FLAGS`` without inference), ``moving`` (a window moving over real footage,
``bench/moving_task.py``'s ``MOVING_FLAGS``) and ``moving16`` (that data at issue 23's shape: a full-width
ResNet-10 on 16 x 56 x 56 clips); data made under ``--data_root`` if missing. Recipes: ``RECIPES``; maths:
the start-up default or ``--precision fp32``. Each run is ``main.py`` in a subprocess with its own result
folder, validated every epoch; the bench polls ``val.log`` every 0.5 s for when each row appeared.

Prints per task a Markdown table of every recipe x math: final video top-1, wall time, the wall time at
which the run first reached the plain recipe's (default math) final video top-1, and the speed-up over
the plain run's time to it and over its whole wall time; with the CPU, its bf16 flags, torch, the date
and the command. Every epoch's row goes to ``WORK_DIR/time_to_accuracy.json``, the tables to ``.md``;
a failed run is a row with its exit code and last line.

``--profile`` trains the first task x recipe x math for ``--profile_epochs`` in this process with
``--n_threads 0 --cpu_threads 1`` (decoding in the profiled process, each second one of CPU work),
under torch.profiler and cProfile: top operators, the split of the wall time into model math, data and
the rest (Python, autograd, start-up, logging), top Python functions and ``train.log``'s data wait."""
import argparse
import csv
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / 'bench'))

from demo import DEMO_FLAGS, prepare_demo_data  # noqa: E402
from moving_task import MOVING_FLAGS, MovingSpec, prepare_moving_data  # noqa: E402
from profile_training import python_profile, torch_profile  # noqa: E402

RECIPES: Dict[str, List[str]] = {'plain': [], 'multigrid': ['--multigrid'],
                                 'multigrid+ra2': ['--multigrid', '--repeat_aug', '2'],
                                 'multigrid-long': ['--multigrid', 'long'], 'multigrid-short': ['--multigrid', 'short'],
                                 'ra2': ['--repeat_aug', '2'],
                                 'multigrid-hold': ['--multigrid', '--multigrid_min_steps', '100000']}  # batch held
DEFAULT_RECIPES = ['plain', 'multigrid', 'multigrid+ra2']  # the issue's three; the others on request
MATHS: Dict[str, List[str]] = {'default': [], 'fp32': ['--precision', 'fp32']}
BASELINE = ('plain', 'default')
# The demo's inference flags and how many values each takes: the bench only validates.
INFERENCE_FLAGS = {'--inference': 0, '--inference_subset': 1, '--inference_stride': 1, '--output_topk': 1}
POLL_S = 0.5
TASKS = ['demo', 'moving', 'moving16']
ISSUE_SHAPE = ['--resnet_widen_factor', '1', '--sample_duration', '16', '--sample_t_stride', '1']


@dataclass
class Task:
    """A dataset and the main.py flags that train on it."""
    name: str
    root: Path
    flags: List[str]
    prepare: Callable[[], int]


@dataclass
class Run:
    """One main.py run: what it was, how it ended and one row per validated epoch."""
    task: str
    recipe: str
    math: str
    repeat: int
    command: List[str]
    exit_code: int = -1
    wall_s: float = 0.0
    last_line: str = ''
    epochs: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def final_top1(self) -> Optional[float]:
        """The video top-1 of the last validated epoch."""
        return self.epochs[-1]['video_top1'] if self.epochs else None

    def reaching(self, target: Optional[float]) -> Optional[Dict[str, Any]]:
        """The first epoch whose video top-1 reached ``target`` (None: never, or no target)."""
        if target is None:
            return None
        return next((e for e in self.epochs if (e['video_top1'] or 0.0) >= target - 1e-9), None)

    def time_to(self, target: Optional[float]) -> Optional[float]:
        """Wall seconds at which the video top-1 first reached ``target`` (None: never, or no target)."""
        first = self.reaching(target)
        return None if first is None else first['wall_s']


# ----------------------------------------------------------------------------- tasks

def without_flags(flags: Sequence[str], drop: Mapping[str, int]) -> List[str]:
    """``flags`` minus each option of ``drop`` and the number of values ``drop`` gives it."""
    out: List[str] = []
    skip = 0
    for f in flags:
        if skip:
            skip -= 1
        elif f in drop:
            skip = drop[f]
        else:
            out.append(f)
    return out


def make_tasks(data_root: Path, spec: MovingSpec, media: Optional[Path] = None) -> Dict[str, Task]:
    """The benchmark's tasks, their data under ``data_root`` (``moving``'s source clips in ``media``, else
    ``shared/media``)."""
    demo, moving = data_root / 'demo', data_root / 'moving'
    demo_flags = without_flags(DEMO_FLAGS, INFERENCE_FLAGS)
    moving_flags = data_flags(moving) + MOVING_FLAGS + ['--n_classes', str(spec.classes)]
    return {'demo': Task('demo', demo, data_flags(demo) + demo_flags, lambda: prepare_demo_data(demo)),
            'moving': Task('moving', moving, moving_flags, lambda: prepare_moving_data(moving, spec, media)),
            'moving16': Task('moving16', moving, moving_flags + ISSUE_SHAPE,
                             lambda: prepare_moving_data(moving, spec, media))}


def data_flags(root: Path) -> List[str]:
    """--video_path and --annotation_path of a prepared UCF-101 style folder (split 1)."""
    return ['--video_path', str(root / 'jpg'), '--annotation_path', str(root / 'ucf101_01.json')]


def run_flags(task: Task, recipe: str, math: str, epochs: Optional[int], extra: Sequence[str]) -> List[str]:
    """The main.py flags of one run, without --result_path (later flags win in main.py's parser)."""
    flags = task.flags + RECIPES[recipe] + MATHS[math] + ['--no_progress']
    if epochs is not None:
        flags += ['--n_epochs', str(epochs)]
    return flags + list(extra)


# ----------------------------------------------------------------------------- running and watching

def complete_rows(path: Path) -> int:
    """Rows below the header of a TSV log that are whole lines (0 while it does not exist)."""
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return 0
    return max(text.count(b'\n') - 1, 0)


def watch(cmd: List[str], val_log: Path, out_path: Path) -> Tuple[int, float, List[float]]:
    """Run ``cmd``; (exit code, wall s, the wall s at which each row of ``val_log`` was first seen)."""
    seen: List[float] = []
    start = time.perf_counter()
    with open(out_path, 'w', encoding='utf-8') as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        try:
            while True:
                try:
                    code: Optional[int] = proc.wait(timeout=POLL_S)
                except subprocess.TimeoutExpired:
                    code = None
                now = time.perf_counter() - start
                rows = complete_rows(val_log)
                seen.extend([now] * (rows - len(seen)))
                if code is not None:
                    return code, now, seen
        finally:
            if proc.poll() is None:  # interrupted: the run does not outlive the bench
                proc.terminate()
                proc.wait()


def read_tsv(path: Path) -> List[Dict[str, str]]:
    """The rows of a TSV log ([] if it does not exist)."""
    if not path.is_file():
        return []
    with open(path, encoding='utf-8', newline='') as f:
        return list(csv.DictReader(f, delimiter='\t'))


def number(text: Optional[str]) -> Optional[float]:
    """A log cell as a float; None for ``n/a``, an empty or a missing cell."""
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def epoch_rows(result: Path, seen: List[float]) -> List[Dict[str, Any]]:
    """One row per validated epoch: when it was seen and the val.log and train.log numbers of it."""
    train = {r['epoch']: r for r in read_tsv(result / 'train.log')}
    rows = []
    for v, wall in zip(read_tsv(result / 'val.log'), seen):
        t = train.get(v['epoch'], {})
        rows.append({'epoch': int(v['epoch']), 'wall_s': round(wall, 2), 'video_top1': number(v.get('video_top1')),
                     'val_clip_acc': number(v.get('acc')), 'val_loss': number(v.get('loss')),
                     'train_loss': number(t.get('loss')), 'clips_per_s': number(t.get('clips_per_s')),
                     'data_wait': number(t.get('data_wait'))})
    return rows


def last_line(path: Path) -> str:
    """The last non-empty line of a file ('' if none)."""
    lines = [line for line in path.read_text(encoding='utf-8', errors='replace').splitlines() if line.strip()]
    return lines[-1].strip() if lines else ''


def run_one(task: Task, recipe: str, math: str, repeat: int, args: argparse.Namespace) -> Run:
    """Train one task x recipe x math in a fresh result folder and collect its epochs."""
    result = args.work_dir / f'{task.name}_{recipe}_{math}_r{repeat}'
    shutil.rmtree(result, ignore_errors=True)
    result.mkdir(parents=True)
    flags = run_flags(task, recipe, math, args.epochs, shlex.split(args.main_flags))
    cmd = [sys.executable, str(ROOT / 'main.py'), *flags, '--result_path', str(result)]
    run = Run(task.name, recipe, math, repeat, cmd)
    print(f'running {task.name} / {recipe} / {math} (repeat {repeat}): output in {result / "stdout.txt"}', flush=True)
    run.exit_code, run.wall_s, seen = watch(cmd, result / 'val.log', result / 'stdout.txt')
    run.wall_s = round(run.wall_s, 2)
    run.epochs = epoch_rows(result, seen)
    run.last_line = last_line(result / 'stdout.txt')
    return run


# ----------------------------------------------------------------------------- the report

def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what platform says)."""
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags(names: Sequence[str] = ('avx512_bf16', 'amx_bf16')) -> Dict[str, bool]:
    """Whether /proc/cpuinfo lists each of ``names`` among the CPU's flags."""
    try:
        listed = set(next(line for line in Path('/proc/cpuinfo').read_text().splitlines()
                          if line.startswith('flags')).split(':', 1)[1].split())
    except (OSError, StopIteration):
        listed = set()
    return {name: name in listed for name in names}


def machine(argv: Sequence[str]) -> Dict[str, object]:
    """The machine, the software and the command the numbers belong to."""
    return {'date': time.strftime('%Y-%m-%d %H:%M'), 'cpu': cpu_model(), 'cpus': os.cpu_count(),
            'cpu_flags': cpu_flags(), 'torch': metadata.version('torch'), 'python': platform.python_version(),
            'command': shlex.join(['python', 'bench/bench_time_to_accuracy.py', *argv])}


def header_lines(m: Mapping[str, object]) -> List[str]:
    """The Markdown lines that say where and how the tables were measured."""
    flags = ', '.join(f"{k} {'yes' if v else 'no'}" for k, v in m['cpu_flags'].items())  # type: ignore[union-attr]
    return [f"- Date: {m['date']}. CPU: {m['cpu']}, {m['cpus']} CPUs; /proc/cpuinfo: {flags}.",
            f"- torch {m['torch']}, Python {m['python']}.", f"- Command: `{m['command']}`"]


def percent(x: Optional[float]) -> str:
    """0.958 as '95.8%'; None as '-'."""
    return '-' if x is None else f'{x:.1%}'


def ratio(seconds: Optional[float], first: Optional[Dict[str, Any]]) -> str:
    """``seconds`` over the wall time of ``first`` (an epoch row), as '2.10x'; '-' if either is missing."""
    return f"{seconds / first['wall_s']:.2f}x" if seconds and first and first['wall_s'] else '-'


def task_table(name: str, runs: List[Run]) -> List[str]:
    """The Markdown table of one task: a row per recipe x math (x repeat)."""
    baselines = {r.repeat: r for r in runs if (r.recipe, r.math) == BASELINE and r.exit_code == 0}
    targets = {k: b.final_top1 for k, b in baselines.items()}
    shown = sorted({percent(t) for t in targets.values()}) or ['none: no plain recipe with the default math ran']
    lines = [f'### {name} (target: the plain recipe\'s final video top-1, {", ".join(shown)})', '',
             '| recipe | math | repeat | final video top-1 | wall s | s to target | speed-up | against plain\'s wall |',
             '|---|---|---|---|---|---|---|---|']
    for r in sorted(runs, key=lambda r: (r.repeat, list(RECIPES).index(r.recipe), list(MATHS).index(r.math))):
        if r.exit_code != 0:
            lines.append(f'| {r.recipe} | {r.math} | {r.repeat} | failed (exit {r.exit_code}): '
                         f'{r.last_line.replace("|", "/")[:100]} | {r.wall_s:.1f} | - | - | - |')
            continue
        first = r.reaching(targets.get(r.repeat))
        base = baselines.get(r.repeat)
        base_time = base.time_to(targets[r.repeat]) if base else None
        speedup, whole = (ratio(base_time, first), ratio(base.wall_s, first)) if base else ('-', '-')
        reached = 'not reached' if first is None else f"{first['wall_s']:.1f} (epoch {first['epoch']:.0f})"
        lines.append(f'| {r.recipe} | {r.math} | {r.repeat} | {percent(r.final_top1)} | {r.wall_s:.1f} | '
                     f'{reached} | {speedup} | {whole} |')
    return lines + ['']


def report(m: Mapping[str, object], runs: List[Run]) -> str:
    """The whole Markdown report: the machine lines and a table per task."""
    lines = ['## Time to accuracy (`bench/bench_time_to_accuracy.py`)', ''] + header_lines(m) + ['']
    for task in dict.fromkeys(r.task for r in runs):
        lines += task_table(task, [r for r in runs if r.task == task])
    return '\n'.join(lines)


# ----------------------------------------------------------------------------- profile

def profile_flags(task: Task, recipe: str, math: str, args: argparse.Namespace, result: Path) -> List[str]:
    """main.py flags of the profiled run: the task's, in-process decoding, ``--profile_epochs`` epochs."""
    flags = run_flags(task, recipe, math, args.profile_epochs, shlex.split(args.main_flags))
    # One compute thread: an operator's time is then its CPU work, not how well two threads overlapped
    # (which another process on the machine can change tenfold, docs/speed.md, CPU threads).
    return flags + ['--n_threads', '0', '--cpu_threads', '1', '--checkpoint', '0', '--result_path', str(result)]


def data_wait_lines(result: Path, work_dir: Path, key: Tuple[str, str, str]) -> List[str]:
    """The data-wait share of training: of the profiled run, and of the benchmark's runs if recorded."""
    rows = read_tsv(result / 'train.log')
    waits = [number(r.get('data_wait')) or 0.0 for r in rows]
    lines = [f'data_wait (train.log) of the profiled run, decoding in-process: '
             f'{sum(waits) / max(len(waits), 1):.0%} of training time']
    saved = work_dir / 'time_to_accuracy.json'
    if saved.is_file():
        for r in json.loads(saved.read_text())['runs']:
            if (r['task'], r['recipe'], r['math']) == key and r['epochs']:
                shares = [e['data_wait'] or 0.0 for e in r['epochs']]
                lines.append(f"data_wait of the benchmark's run (repeat {r['repeat']}, its own DataLoader workers): "
                             f'{sum(shares) / len(shares):.0%}')
    return lines


def profile(task: Task, recipe: str, math: str, args: argparse.Namespace) -> None:
    """Profile one task x recipe x math (see the module's docstring)."""
    result = args.work_dir / f'profile_{task.name}_{recipe}_{math}'
    flags = profile_flags(task, recipe, math, args, result)
    print(f'\n### Profile: {task.name} / {recipe} / {math}, {args.profile_epochs} epochs, '
          '--n_threads 0 --cpu_threads 1\n')
    print('main.py ' + shlex.join(flags))
    torch_profile(flags, result)
    python_profile(flags, result)
    print('\n'.join(data_wait_lines(result, args.work_dir, (task.name, recipe, math))))


# ----------------------------------------------------------------------------- command line

def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The bench's options."""
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument('--tasks', nargs='+', default=TASKS, choices=TASKS)
    p.add_argument('--recipes', nargs='+', default=DEFAULT_RECIPES, choices=list(RECIPES))
    p.add_argument('--maths', nargs='+', default=list(MATHS), choices=list(MATHS))
    p.add_argument('--epochs', type=int, default=None, help="Override the task's --n_epochs")
    p.add_argument('--repeat', type=int, default=1, help='Runs of each task x recipe x math')
    p.add_argument('--work_dir', type=Path, default=Path('bench_results/time_to_accuracy'))
    p.add_argument('--data_root', type=Path, default=Path('bench_results/data'))
    p.add_argument('--main_flags', default='', help="More main.py flags for every run (give as --main_flags='...')")
    p.add_argument('--moving_classes', type=int, default=MovingSpec.classes)
    p.add_argument('--moving_videos_per_class', type=int, default=MovingSpec.videos_per_class)
    p.add_argument('--moving_frames', type=int, default=MovingSpec.frames)
    p.add_argument('--media', type=Path, default=None, help="Folder of moving's source clips (default: shared/media)")
    p.add_argument('--profile', action='store_true', help='Profile the first task x recipe x math instead')
    p.add_argument('--profile_epochs', type=int, default=1)
    args = p.parse_args(argv)
    args.work_dir, args.data_root = args.work_dir.resolve(), args.data_root.resolve()
    return args


def ordered_runs(args: argparse.Namespace) -> List[Tuple[str, str, int]]:
    """(recipe, math, repeat) in the order they run: the baseline first in each repeat."""
    pairs = [(r, m) for r in args.recipes for m in args.maths]
    pairs.sort(key=lambda pair: pair != BASELINE)
    return [(r, m, k) for k in range(1, args.repeat + 1) for r, m in pairs]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Prepare the data, then run the benchmark (or the profile) and report."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    spec = MovingSpec(classes=args.moving_classes, videos_per_class=args.moving_videos_per_class,
                      frames=args.moving_frames)
    tasks = make_tasks(args.data_root, spec, args.media)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    for name in dict((tasks[n].root, n) for n in args.tasks).values():  # moving16 reads moving's data
        if tasks[name].prepare() != 0:
            print(f'error: preparing the {name} data failed', file=sys.stderr)
            return 1
    if args.profile:
        profile(tasks[args.tasks[0]], args.recipes[0], args.maths[0], args)
        return 0
    m = machine(argv)
    runs = [run_one(tasks[name], recipe, math, k, args)
            for name in args.tasks for recipe, math, k in ordered_runs(args)]
    text = report(m, runs)
    (args.work_dir / 'time_to_accuracy.md').write_text(text + '\n')
    (args.work_dir / 'time_to_accuracy.json').write_text(
        json.dumps({'machine': m, 'runs': [asdict(r) for r in runs]}, indent=1) + '\n')
    print('\n' + text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
