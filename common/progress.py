"""Progress of a pass over batches: a bar on a terminal, a periodic plain line otherwise.

``progress(items, total=..., desc=...)`` wraps an iterable. When stderr is a terminal it is a
tqdm bar (redrawn in place); when stderr goes to a file or a pipe it prints, to stderr, one
line at every tenth of the pass and whenever ``LINE_EVERY_S`` seconds passed without one::

    epoch 3 train: 120/400 batches (30%), loss 1.230, acc 0.512, 45.0 clips/s, data wait 3%

(not at the end: the caller's summary line follows). Disabled, it yields the items and
prints nothing. ``set_postfix`` and ``close`` behave as tqdm's in all three cases.
Standard library only (tqdm is imported for a terminal).
"""
import sys
import time
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, TextIO

LINE_EVERY_S = 120.0  # a line at least this often when a tenth of the pass takes longer


class Quiet:
    """No progress at all: the items, unchanged."""

    def __init__(self, items: Iterable[Any]):
        self.items = items

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)

    def set_postfix(self, ordered_dict: Optional[Dict[str, Any]] = None, **values: Any) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


def postfix_text(values: Dict[str, Any]) -> str:
    """``loss 1.230, 45.0 clips/s``: each value after its name, rates (``.../s``) before it."""
    return ', '.join(f'{v} {k}' if k.endswith('/s') else f'{k} {v}' for k, v in values.items())


class LineProgress(Quiet):
    """One plain line per tenth of the pass (and at least every ``every_s`` seconds), for logs."""

    def __init__(self, items: Iterable[Any], total: Optional[int], desc: str, initial: int = 0,
                 unit: str = 'batches', every_s: float = LINE_EVERY_S, stream: Optional[TextIO] = None,
                 clock: Callable[[], float] = time.monotonic):
        super().__init__(items)
        self.total, self.desc, self.n, self.unit, self.every_s = total, desc, initial, unit, every_s
        self.stream, self.clock = stream, clock
        self.values: Dict[str, Any] = {}
        self.last = clock()

    def set_postfix(self, ordered_dict: Optional[Dict[str, Any]] = None, **values: Any) -> None:
        """The figures the next line shows after the count (tqdm's arguments)."""
        self.values = {**(ordered_dict or {}), **values}

    def __iter__(self) -> Iterator[Any]:
        for item in self.items:
            yield item
            self.n += 1
            self._maybe_print()

    def _tenth(self, n: int) -> int:
        return n * 10 // self.total if self.total else 0

    def _maybe_print(self) -> None:
        now = self.clock()
        crossed = bool(self.total) and self._tenth(self.n) > self._tenth(self.n - 1)
        if self.total is not None and self.n >= self.total:
            return
        if crossed or now - self.last >= self.every_s:
            self.last = now
            print(self.line(), file=self.stream or sys.stderr, flush=True)

    def line(self) -> str:
        """``desc: n/total batches (p%), figures``."""
        count = f'{self.n}/{self.total} {self.unit} ({self.n / self.total:.0%})' if self.total \
            else f'{self.n} {self.unit}'
        figures = postfix_text(self.values)
        return f"{self.desc}: {count}{', ' + figures if figures else ''}"


def progress(items: Iterable[Any], *, total: Optional[int], desc: str, enabled: bool = True, initial: int = 0,
             unit: str = 'batches', stream: Optional[TextIO] = None) -> Any:
    """A tqdm bar on a terminal, ``LineProgress`` when stderr is a file or a pipe, ``Quiet`` when not ``enabled``."""
    if not enabled:
        return Quiet(items)
    stream = stream or sys.stderr
    if getattr(stream, 'isatty', lambda: False)():
        from tqdm import tqdm
        return tqdm(items, total=total, initial=initial, desc=desc, dynamic_ncols=True, leave=False, file=stream)
    return LineProgress(items, total, desc, initial, unit, stream=stream)
