"""Command-line plumbing shared by the converters (generate_video_*, generate_flow_hdf5).

The conversion itself is ``conversion``; see its docstring for layouts, temp names,
resume and the summary. Errors and exit codes go through ``common.cli``.
"""
import argparse
import functools
from fractions import Fraction
from pathlib import Path
from typing import Callable, List, Optional

from common import cli
from conversion.runner import DATASETS, run_conversion


def parse_fps(text: str) -> Fraction:
    """An --fps value: a number or a ratio such as 30000/1001; -1 keeps every frame."""
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f'not a frame rate: {text!r}')


def positive_float(text: str) -> float:
    """An argparse type for numbers above zero."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f'must be positive: {text}')
    return value


def add_fps_argument(parser: argparse.ArgumentParser, note: str = '') -> None:
    """The converters' ``--fps`` option (-1: every frame)."""
    parser.add_argument('--fps', type=parse_fps, default=Fraction(-1),
                        help='Output frame rate, picked by presentation time (-1: every frame)' + note)


def base_parser(tool: str, doc: str) -> argparse.ArgumentParser:
    """The arguments every conversion script takes: SRC DST DATASET --n_jobs --size."""
    parser = cli.parser(tool, doc)
    parser.add_argument('src', type=Path, metavar='SRC', help='Folder of source videos')
    parser.add_argument('dst', type=Path, metavar='DST', help='Output folder')
    parser.add_argument('dataset', metavar='DATASET',
                        help=f'{", ".join(DATASETS)} (activitynet: SRC holds the videos '
                             f'directly; folder, your own dataset, and the others: class folders, SRC/<class>/<video>)')
    parser.add_argument('--n_jobs', type=int, default=None,
                        help='Processes (default: all CPUs; -1 too; 1: no pool)')
    parser.add_argument('--size', type=cli.positive_int, default=240,
                        help='Short side of the output frames')
    return parser


def convert(args: argparse.Namespace, suffix: str, writer: Callable[[Path, Path], str],
            n_jobs: Optional[int] = None) -> int:
    """Run the conversion the parsed arguments describe; a missing SRC is a one-line error (2)."""
    n_jobs = args.n_jobs if n_jobs is None else n_jobs
    return cli.run(lambda: run_conversion(args.src, args.dst, args.dataset, suffix, writer, n_jobs))


def frames_main(argv: Optional[List[str]], tool: str, doc: str, suffix: str,
                write: Callable[..., str]) -> int:
    """A converter taking SRC DST DATASET --n_jobs --size --fps whose writer is ``write(src, tmp, size, fps)``."""
    parser = base_parser(tool, doc)
    add_fps_argument(parser)
    args = parser.parse_args(argv)
    return convert(args, suffix, functools.partial(write, size=args.size, fps=args.fps))
