"""The annotation builders' inputs: required files and folders, text lines and CSV rows.

Every problem is an ``AnnotationError`` whose one-line message names the file. Text is read
as UTF-8 (a BOM and CRLF line ends are tolerated). Standard library only.
"""
import csv
import io
import os
from pathlib import Path
from typing import Dict, List, Sequence, Union

from common.errors import read_text
from datasets.formats.annotation_json import AnnotationError

PathLike = Union[str, os.PathLike]


def require_file(path: PathLike, what: str = 'file') -> Path:
    """The path, or AnnotationError if it is not an existing file."""
    path = Path(path)
    if not path.is_file():
        raise AnnotationError(f'{what} not found: {path}')
    return path


def require_dir(path: PathLike, what: str = 'folder') -> Path:
    """The path, or AnnotationError if it is not an existing directory."""
    path = Path(path)
    if not path.is_dir():
        raise AnnotationError(f'{what} not found: {path}')
    return path


def read_lines(path: PathLike) -> List[str]:
    """Non-blank, stripped lines of a UTF-8 text file (BOM and CRLF tolerated)."""
    text = read_text(require_file(path), AnnotationError, encoding='utf-8-sig')
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_csv_rows(path: PathLike) -> List[List[str]]:
    """Non-blank rows of a header-less CSV file, cells stripped."""
    text = read_text(require_file(path), AnnotationError, encoding='utf-8-sig', newline='')
    try:
        return [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text, newline=''))
                if any(cell.strip() for cell in row)]
    except csv.Error as e:
        raise AnnotationError(f'{path}: unreadable CSV ({e})') from None


def read_csv_dicts(path: PathLike, required: Sequence[str]) -> List[Dict[str, str]]:
    """Rows of a CSV file with a header as dicts; AnnotationError if a required column lacks."""
    rows = read_csv_rows(path)
    if not rows:
        raise AnnotationError(f'{path}: empty CSV file')
    header = rows[0]
    lacking = [name for name in required if name not in header]
    if lacking:
        raise AnnotationError(f'{path}: bad header: no column {", ".join(lacking)} '
                              f'(found: {",".join(header)})')
    return [dict(zip(header, row)) for row in rows[1:]]


def clip_key(row: Dict[str, str], path: PathLike, index: int) -> str:
    """``<youtube_id>_<%06d start>_<%06d end>`` of one Kinetics-style CSV row (Kinetics, HVU)."""
    try:
        start, end = int(float(row['time_start'])), int(float(row['time_end']))
    except (TypeError, ValueError):
        raise AnnotationError(f'{path}: row {index}: time_start/time_end are not numbers '
                              f'({row.get("time_start")!r}, {row.get("time_end")!r})') from None
    return '%s_%06d_%06d' % (row['youtube_id'], start, end)
