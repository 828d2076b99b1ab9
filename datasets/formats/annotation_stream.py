"""An annotation file's ``database`` read entry by entry: 700,000 entries never live as Python objects at once.

``read_entries(path)`` gives the file's top-level members before ``database`` (``labels`` or
``taxonomy``, ``version``...) and an iterator over ``(video_id, entry)`` in file order, each
entry parsed from the text by the json module's own scanner when it is reached; the rest of
the file is checked when the iterator ends. Parsed whole by ``json.loads`` this way round, such
a file takes about 0.75 KB of Python objects per entry (500 MB at Kinetics-700 scale) and
twice the time, most of it garbage collection passes over the growing heap.

A file that does not have the usual shape (not an object, no ``database`` object, the labels
after the database) is read whole, so its errors are ``read_annotation_json``'s. A repeated
video id raises ``RepeatedId`` from the iterator: read such a file whole with ``whole_entries``,
where the later entry replaces the earlier one at its place, as a JSON object's keys do (both
functions take the file's text when it has been read).
Standard library only.
"""
import json
import re
from json.decoder import scanstring
from typing import Any, Dict, Iterator, Optional, Set, Tuple

from common.errors import read_text
from datasets.formats.annotation_json import AnnotationError, PathLike, parse_annotation_json

Entries = Iterator[Tuple[str, Any]]
LABEL_KEYS = ('labels', 'taxonomy')  # what must come before the database for it to be streamed
_SPACE = re.compile(r'[ \t\n\r]*')
_COLON = re.compile(r'[ \t\n\r]*:[ \t\n\r]*')
_NEXT = re.compile(r'[ \t\n\r]*(?:(\})|,[ \t\n\r]*)')  # past the '}' that ends an object, or to the next name
_SCAN = json.JSONDecoder().scan_once


class RepeatedId(Exception):
    """A video id (or a top-level key) occurs twice: the file must be read whole."""


def _skip(text: str, pos: int) -> int:
    return _SPACE.match(text, pos).end()


def _expect(text: str, pos: int, char: str, what: str) -> int:
    """The position after ``char`` (and the spaces after it) at ``pos``."""
    if text[pos:pos + 1] != char:
        raise json.JSONDecodeError(f'Expecting {what}', text, pos)
    return _skip(text, pos + 1)


def _key(text: str, pos: int) -> Tuple[str, int]:
    """A member's name at ``pos`` and the position of its value."""
    if text[pos:pos + 1] != '"':
        raise json.JSONDecodeError('Expecting property name enclosed in double quotes', text, pos)
    key, pos = scanstring(text, pos + 1)
    return key, _expect(text, _skip(text, pos), ':', "':' delimiter")


def _value(text: str, pos: int) -> Tuple[Any, int]:
    try:
        return _SCAN(text, pos)
    except StopIteration as e:
        raise json.JSONDecodeError('Expecting value', text, e.value) from None


def _after(text: str, pos: int) -> Tuple[bool, int]:
    """After a member's value: (whether another member follows, the position of its name or past the '}')."""
    pos = _skip(text, pos)
    if text[pos:pos + 1] == '}':
        return False, pos + 1
    return True, _expect(text, pos, ',', "',' delimiter")


def _members(text: str, pos: int, seen: Set[str]) -> Iterator[Tuple[str, Any]]:
    """The members of the object whose '{' is at ``pos``, one by one; returns the position past its '}'.

    The hot loop of a large file, written out: one regular expression between two members.
    """
    pos = _skip(text, pos + 1)
    if text[pos:pos + 1] == '}':
        return pos + 1
    while True:
        if text[pos:pos + 1] != '"':
            raise json.JSONDecodeError('Expecting property name enclosed in double quotes', text, pos)
        key, pos = scanstring(text, pos + 1)
        colon = _COLON.match(text, pos)
        if colon is None:
            raise json.JSONDecodeError("Expecting ':' delimiter", text, _skip(text, pos))
        if key in seen:
            raise RepeatedId(key)
        seen.add(key)
        value, pos = _value(text, colon.end())
        yield key, value
        after = _NEXT.match(text, pos)
        if after is None:
            raise json.JSONDecodeError("Expecting ',' delimiter", text, _skip(text, pos))
        if after.group(1):
            return after.end()
        pos = after.end()


def _header(text: str) -> Optional[Tuple[Dict[str, Any], int]]:
    """The top-level members before ``database`` and where its object starts; None: not the usual shape."""
    try:
        pos = _skip(text, 0)
        if text[pos:pos + 1] != '{':
            return None
        header: Dict[str, Any] = {}
        pos = _skip(text, pos + 1)
        more = text[pos:pos + 1] != '}'
        while more:
            key, pos = _key(text, pos)
            if key == 'database':
                usual = text[pos:pos + 1] == '{' and any(isinstance(header.get(k), list) for k in LABEL_KEYS)
                return (header, pos) if usual else None
            header[key], pos = _value(text, pos)
            more, pos = _after(text, pos)
    except json.JSONDecodeError:
        return None
    return None


def _stream(path: PathLike, text: str, header: Dict[str, Any], pos: int) -> Entries:
    try:
        pos = yield from _members(text, pos, set())
        more, pos = _after(text, pos)
        later = set(header) | {'database'}
        while more:  # the members after the database: checked, and a second 'labels' or 'database' is a repeat
            key, pos = _key(text, pos)
            if key in later:
                raise RepeatedId(key)
            _, pos = _value(text, pos)
            more, pos = _after(text, pos)
        if _skip(text, pos) != len(text):
            raise json.JSONDecodeError('Extra data', text, _skip(text, pos))
    except json.JSONDecodeError as e:
        raise AnnotationError(f'{path}: not valid JSON ({e})') from None


def whole_entries(path: PathLike, text: Optional[str] = None) -> Tuple[Dict[str, Any], Entries]:
    """The file parsed whole (``read_annotation_json``): its other members and its entries."""
    data = parse_annotation_json(path, read_text(path, AnnotationError, 'annotation file') if text is None else text)
    return {k: v for k, v in data.items() if k != 'database'}, iter(data['database'].items())


def read_entries(path: PathLike, text: Optional[str] = None) -> Tuple[Dict[str, Any], Entries]:
    """The file's members before ``database``, and its entries one at a time (see the module's note)."""
    text = read_text(path, AnnotationError, 'annotation file') if text is None else text
    found = _header(text)
    if found is None:
        return whole_entries(path, text)
    header, pos = found
    return header, _stream(path, text, header, pos)
