"""Command-line plumbing of the tools: one-line user errors with exit code 2, shared arguments.

A tool's ``main(argv)`` parses its arguments with :func:`parser` and the ``add_*`` helpers,
then returns ``run(lambda: body(args))``: a :class:`UserError` raised anywhere in ``body``
(``AnnotationError`` and ``ResultsError`` are ones) is printed as ``error: <message>`` on
stderr and becomes exit code 2; ``body`` returns its own exit code, or None for 0. Tools with
their own error classes pass them as ``run(..., errors=(TheirError,))``. Usage mistakes are
one line too (:class:`OneLineParser`): a misspelled choice or flag names the closest valid
one (``error: --model: invalid choice 'resnt' (did you mean 'resnet'? choose from ...)``);
numeric flags are checked as they are parsed by the types :func:`int_in` and
:func:`float_in` make (``error: --k must be an integer >= 1, not 0``). Standard library only.
"""
import argparse
import difflib
import math
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, List, NoReturn, Optional, Tuple, Type

from common.errors import UserError

USAGE_ERROR = 2


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
    return OneLineParser(prog=f'python -m util_scripts.{tool}', description=doc.strip().splitlines()[0])


def add_paths(parser: argparse.ArgumentParser, **helps: str) -> None:
    """One positional path argument per keyword, in order: ``name`` shown as ``NAME``, with its help."""
    for name, help_text in helps.items():
        parser.add_argument(name, metavar=name.upper(), type=Path, help=help_text)


def _bounds_text(lo: Optional[float], hi: Optional[float], open_lo: bool, open_hi: bool) -> str:
    """``>= 1``, ``> 0``, ``in (0, 1]``: the range a number must lie in, as an error message says it."""
    if lo is not None and hi is not None:
        return f"in {'(' if open_lo else '['}{lo}, {hi}{')' if open_hi else ']'}"
    if lo is not None:
        return f"{'>' if open_lo else '>='} {lo}"
    if hi is not None:
        return f"{'<' if open_hi else '<='} {hi}"
    return ''


def _in_range(value: float, lo: Optional[float], hi: Optional[float], open_lo: bool, open_hi: bool) -> bool:
    above = lo is None or (value > lo if open_lo else value >= lo)
    return above and (hi is None or (value < hi if open_hi else value <= hi))


def _number_type(kind: str, convert: Callable[[str], float], lo: Optional[float], hi: Optional[float],
                 open_lo: bool, open_hi: bool, also: Tuple[float, ...]) -> Callable[[str], float]:
    wanted = ' '.join(filter(None, (kind, _bounds_text(lo, hi, open_lo, open_hi))))
    wanted += ''.join(f' or {a}' for a in also)

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except (TypeError, ValueError):
            value = None
        finite = value is not None and (not isinstance(value, float) or math.isfinite(value))
        if not finite or not (value in also or _in_range(value, lo, hi, open_lo, open_hi)):
            raise argparse.ArgumentTypeError(f'must be {wanted}, not {text.strip() or repr(text)}')
        return value
    parse.__name__ = kind.split()[-1]  # what argparse calls the type in its own messages
    return parse


def int_in(lo: Optional[int] = None, hi: Optional[int] = None, also: Tuple[int, ...] = ()) -> Callable[[str], int]:
    """An argparse type: an integer in [lo, hi] (None: unbounded) or one of ``also``; else a one-line error."""
    return _number_type('an integer', int, lo, hi, False, False, also)  # type: ignore[return-value]


def float_in(lo: Optional[float] = None, hi: Optional[float] = None, open_lo: bool = False,
             open_hi: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number from lo to hi (None: unbounded; ``open_*``: bound excluded)."""
    return _number_type('a number', float, lo, hi, open_lo, open_hi, ())


POSITIVE, NATURAL = int_in(1), int_in(0)  # argparse types: an integer >= 1, an integer >= 0
positive_int = POSITIVE  # the older name, used by the conversion scripts


def or_auto(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type: ``auto`` (returned as is: the run decides), or what ``parse`` accepts."""
    def parse_or_auto(text: str) -> Any:
        if text.strip() == 'auto':
            return 'auto'
        try:
            return parse(text)
        except argparse.ArgumentTypeError as e:
            raise argparse.ArgumentTypeError(str(e).replace(', not ', ' or auto, not ', 1)) from None
    parse_or_auto.__name__ = parse.__name__
    return parse_or_auto


def closest(word: str, candidates: Iterable[str]) -> Optional[str]:
    """The candidate most like ``word`` (a misspelling or the start of it), or None if none is close."""
    candidates = list(candidates)
    found = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    starting = [c for c in candidates if word and c.startswith(word)]
    return found[0] if found else starting[0] if len(starting) == 1 else None


def _shown(choice: Any) -> str:
    text = str(choice)
    return repr(text) if not text or text.strip() != text or ' ' in text else text


def invalid_choice_text(value: Any, choices: Iterable[Any]) -> str:
    """``invalid choice 'resnt' (did you mean 'resnet'? choose from resnet, resnext, ...)``."""
    names = [str(c) for c in choices]
    near = closest(str(value), names)
    hint = f'did you mean {near!r}? ' if near is not None else ''
    return f"invalid choice {str(value)!r} ({hint}choose from {', '.join(_shown(c) for c in names)})"


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage mistakes are one line, ``error: <message>``, exit code 2."""

    def _check_value(self, action: argparse.Action, value: Any) -> None:
        """A value outside ``choices`` is an error naming the closest valid choice."""
        if action.choices is not None and value not in action.choices:
            raise argparse.ArgumentError(action, invalid_choice_text(value, action.choices))

    def error(self, message: str) -> NoReturn:
        """Print ``error: --flag must be ...`` (argparse's ``argument --flag: ...`` reworded) and exit 2."""
        if message.startswith('argument ') and ': ' in message:
            names, rest = message[len('argument '):].split(': ', 1)
            message = f"{names}{' ' if rest.startswith('must ') else ': '}{rest}"
        elif message.startswith('unrecognized arguments: '):
            message += self._flag_hint(message[len('unrecognized arguments: '):].split())
        self.exit(USAGE_ERROR, f'error: {message}\n')

    def _flag_hint(self, unknown: List[str]) -> str:
        """`` (did you mean --model?)`` for the first unknown flag close to a real one, else ''."""
        flags = [s for action in self._actions for s in action.option_strings]
        for word in unknown:
            near = closest(word.split('=', 1)[0], flags) if word.startswith('--') else None
            if near is not None:
                return f' (did you mean {near}?)'
        return ''
