"""Command-line plumbing of the tools: one-line user errors with exit code 2, shared arguments.

A tool's ``main(argv)`` parses its arguments with :func:`parser` and the ``add_*`` helpers,
then returns ``run(lambda: body(args))``: a :class:`UserError` raised anywhere in ``body``
(``AnnotationError`` and ``ResultsError`` are ones) is printed as ``error: <message>`` on
stderr and becomes exit code 2; ``body`` returns its own exit code, or None for 0. Tools with
their own error classes pass them as ``run(..., errors=(TheirError,))``. Standard library only.
"""
import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Type

from datasets.formats.annotation_json import FILE_TYPES
from datasets.formats.errors import UserError

USAGE_ERROR = 2
CLASS_FOLDERS = 'videos as VIDEO_ROOT/<class>/<id>[.hdf5|.<ext>]'  # help of a video root
TEST_FOLDER = CLASS_FOLDERS + '; testing in test/'


def fail(error: object) -> int:
    """Print ``error: <error>`` as one line on stderr; return the exit code 2."""
    print(f'error: {error}', file=sys.stderr)
    return USAGE_ERROR


def run(body: Callable[[], Optional[int]], errors: Tuple[Type[BaseException], ...] = ()) -> int:
    """``body()``'s exit code (None counts as 0); a UserError or one of ``errors`` is a one-line error, 2."""
    try:
        code = body()
    except (UserError,) + tuple(errors) as e:
        return fail(e)
    return 0 if code is None else code


def parser(tool: str, doc: str) -> argparse.ArgumentParser:
    """An argument parser for ``python -m util_scripts.<tool>`` described by the first line of ``doc``."""
    return argparse.ArgumentParser(prog=f'python -m util_scripts.{tool}',
                                   description=doc.strip().splitlines()[0])


def add_paths(parser: argparse.ArgumentParser, **helps: str) -> None:
    """One positional path argument per keyword, in order: ``name`` shown as ``NAME``, with its help."""
    for name, help_text in helps.items():
        parser.add_argument(name, metavar=name.upper(), type=Path, help=help_text)


def add_file_type(parser: argparse.ArgumentParser, positional: bool = False) -> None:
    """The video file type: a positional ``FILE_TYPE`` (the original's) or ``--file_type`` (default jpg)."""
    if positional:
        parser.add_argument('file_type', metavar='FILE_TYPE', choices=FILE_TYPES,
                            help='jpg (frame folders), hdf5 or video (video files)')
    else:
        parser.add_argument('--file_type', choices=FILE_TYPES, default='jpg',
                            help='jpg frame folders, hdf5 files or video files (default: jpg)')


def parse_paths(tool: str, doc: str, paths: Dict[str, str],
                argv: Optional[List[str]]) -> argparse.Namespace:
    """Parse the usual builder arguments: positional ``paths`` (name -> help, in order), ``--file_type``."""
    parser_ = parser(tool, doc)
    add_paths(parser_, **paths)
    add_file_type(parser_)
    return parser_.parse_args(argv)


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'not an integer: {text!r}') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1: {value}')
    return value
