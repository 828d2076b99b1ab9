"""Data faults (an unreadable video, a frame replaced, an assumed normalisation) reported as one clean line each.

``report_fault(message)`` issues a :class:`DataFault` warning, so that callers and tests can
filter or catch it like any other warning; but where Python would print it with its source
file, line number and code line, a ``DataFault`` (any :class:`OneLineWarning`) is printed as
``warning: <message>`` alone; in one process of several (``WORLD_SIZE`` > 1 and ``RANK`` set, as
torchrun sets them and DataLoader workers inherit them) ``warning: rank <RANK>: <message>``.
The formatting is installed when this module is imported, which the datasets do, so it holds
in DataLoader worker processes too (forked or spawned); other warnings keep Python's format.
Standard library only.
"""
import os
import warnings
from typing import Any, Callable, Optional


class OneLineWarning(UserWarning):
    """A warning for the user, printed as ``warning: <message>`` without Python's source lines."""


class DataFault(OneLineWarning):
    """A problem with the input data that the run survives (the video leaves its batch, a default is assumed)."""


def report_fault(message: str) -> None:
    """Warn of a data fault: printed as the one line ``warning: <message>``."""
    warnings.warn(DataFault(' '.join(str(message).split())), stacklevel=2)


def rank_prefix() -> str:
    """``'rank <RANK>: '`` in one process of several (environment ``WORLD_SIZE`` > 1, ``RANK`` set), else ``''``."""
    rank = os.environ.get('RANK', '').strip()
    try:
        several = int(os.environ.get('WORLD_SIZE', '1')) > 1
    except ValueError:
        several = False
    return f'rank {rank}: ' if several and rank else ''


def _one_line(previous: Callable[..., str]) -> Callable[..., str]:
    def formatwarning(message: Any, category: type, filename: str, lineno: int, line: Optional[str] = None) -> str:
        if isinstance(category, type) and issubclass(category, OneLineWarning):
            return f'warning: {rank_prefix()}{message}\n'  # read per warning, not at import
        return previous(message, category, filename, lineno, line)
    formatwarning.one_line_faults = True  # type: ignore[attr-defined]
    return formatwarning


def install() -> None:
    """Print ``OneLineWarning``s as one line (idempotent; other categories keep their format)."""
    if not getattr(warnings.formatwarning, 'one_line_faults', False):
        warnings.formatwarning = _one_line(warnings.formatwarning)


install()
