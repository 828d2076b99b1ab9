"""Where a main.py run's time goes: torch.profiler's operators and cProfile's functions of an in-process run.

Used by ``bench/bench_time_to_accuracy.py --profile``: ``torch_profile(flags, result)`` prints the
top operators by self CPU time and splits the wall time into model math (tensor operators outside
data loading), data (the DataLoader's batches: decoding and transforms) and the rest (Python, the
autograd engine, start-up, logging); ``python_profile`` prints the functions with the most own time.
"""
import cProfile
import io
import pstats
import shutil
import time
from pathlib import Path
from typing import List


def run_in_process(flags: List[str], result: Path) -> float:
    """Train with main.main in this process in a fresh ``result``; its wall seconds."""
    import main as main_py
    shutil.rmtree(result, ignore_errors=True)
    start = time.perf_counter()
    code = main_py.main(flags)
    if code != 0:
        raise SystemExit(f'the profiled run failed (exit {code})')
    return time.perf_counter() - start


def is_data(key: str) -> bool:
    """Whether a profiler event is the DataLoader fetching a batch."""
    return key.startswith('enumerate(DataLoader)')


def is_operator(key: str) -> bool:
    """Whether a profiler event is a tensor operator (not the autograd engine or a named region)."""
    return '::' in key and not key.startswith('autograd::') and not is_data(key)


def torch_profile(flags: List[str], result: Path) -> None:
    """Top operators by self CPU time and the split of the wall time into math, data and the rest."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        wall = run_in_process(flags, result)
    events = prof.key_averages()
    print('\n#### Top operators by self CPU time (torch.profiler)\n')
    print(events.table(sort_by='self_cpu_time_total', row_limit=15))
    data = sum(e.cpu_time_total for e in events if is_data(e.key)) / 1e6
    data_ops = sum(e.cpu_time_total - e.self_cpu_time_total for e in events if is_data(e.key)) / 1e6
    math = sum(e.self_cpu_time_total for e in events if is_operator(e.key)) / 1e6 - data_ops
    rest = wall - data - math
    print(f'\nwall {wall:.1f} s: model math (operators outside data loading) {math:.1f} s ({math / wall:.0%}), '
          f'data (decoding and transforms) {data:.1f} s ({data / wall:.0%}), the rest (Python, autograd engine, '
          f'start-up, logging) {rest:.1f} s ({rest / wall:.0%})')


def python_profile(flags: List[str], result: Path) -> None:
    """The Python functions (and the C functions they call) with the most own time (cProfile)."""
    profiler = cProfile.Profile()
    profiler.runcall(run_in_process, flags, result)
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats('tottime').print_stats(15)
    table = text.getvalue()
    print('\n#### Top functions by own time (cProfile)\n')
    print(table[table.find('   ncalls'):].rstrip())  # from the column names on, without pstats' preamble
