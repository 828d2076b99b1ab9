"""The one exception class for a user's mistake, and reading a text file with one-line errors."""
import os
from typing import Optional, Type, Union


class UserError(ValueError):
    """A mistake in the user's input (a missing or malformed file); the message is one line naming it.

    ``AnnotationError`` and ``ResultsError`` are kinds of it; ``cli.run`` turns it into exit code 2.
    """


def read_text(path: Union[str, os.PathLike], error: Type[UserError] = UserError, what: str = 'file',
              encoding: str = 'utf-8', newline: Optional[str] = None) -> str:
    """The text of a file, or ``error`` with a one-line message naming it (absent, not UTF-8, unreadable)."""
    try:
        with open(path, encoding=encoding, newline=newline) as f:
            return f.read()
    except FileNotFoundError:
        raise error(f'{path}: {what} not found') from None
    except UnicodeDecodeError as e:
        raise error(f'{path}: not UTF-8 text ({e.reason})') from None
    except OSError as e:
        raise error(f'{path}: cannot read ({e.strerror or e})') from None
