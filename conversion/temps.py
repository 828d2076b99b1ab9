"""Temp names of the converters' outputs: unique per process, named after their owner, removed only when it is gone.

Every output is written to ``.<name>.tmp-<host>-<pid>-<start>-<random>`` beside its target
(``host``: 8 hex digits of the host name's hash; ``pid`` and ``start``: the writing process and
when it started, in clock ticks since boot, 0 where unknown) and renamed into place when
complete. A temp name is stale, and removed, only when its owner is certainly gone: written on
this host by a process that no longer exists (or whose PID now belongs to a process started at
another time). So two conversions into one DST never delete each other's work. Names of older
versions (``.tmp-`` and 16 hex digits) record no owner and are removed as before.
"""
import functools
import hashlib
import os
import re
import secrets
import shutil
import socket
from pathlib import Path
from typing import Iterable

from common.processes import process_ended, process_start_ticks

TEMP_NAME = re.compile(r'\.(?P<name>.*)\.tmp-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-(?P<start>[0-9]+)-[0-9a-f]{8}',
                       re.DOTALL)
OWNERLESS = re.compile(r'\..*\.tmp-[0-9a-f]{16}', re.DOTALL)  # written by versions before owners


def host_tag() -> str:
    """This host, as temp names record it: 8 hex digits of its name's SHA-1."""
    return hashlib.sha1(socket.gethostname().encode('utf-8', 'replace')).hexdigest()[:8]


@functools.lru_cache(maxsize=None)
def _owner(pid: int) -> str:
    return f'{host_tag()}-{pid}-{process_start_ticks(pid) or 0}'


def temp_path(dst: Path) -> Path:
    """A fresh temp name beside ``dst``, owned by this process."""
    # the name is cut so that the temp name stays within the usual 255-byte limit
    return dst.with_name(f'.{dst.name[:200]}.tmp-{_owner(os.getpid())}-{secrets.token_hex(4)}')


def owner_gone(name: str) -> bool:
    """Whether ``name`` is a temp name whose writer has certainly ended (False: not one, or maybe running)."""
    match = TEMP_NAME.fullmatch(name)
    if match is None:
        return OWNERLESS.fullmatch(name) is not None
    if match['host'] != host_tag():
        return False
    return process_ended(int(match['pid']), int(match['start']) or None)  # start 0: unknown


def remove(path: Path) -> None:
    """Delete a temp output, a folder or a file (gone already: nothing to do)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def remove_stale_temps(directories: Iterable[Path]) -> int:
    """Delete the temp outputs of ended runs in the given directories; return how many."""
    removed = 0
    for directory in directories:
        if not directory.is_dir():
            continue
        for entry in directory.iterdir():
            if entry.name.startswith('.') and '.tmp-' in entry.name and owner_gone(entry.name):
                remove(entry)
                removed += 1
    return removed
