"""Atomic file writes: a temp file beside the target, fsync, rename. Standard library only.

A crash or kill at any moment leaves either the previous file or the complete new one,
never a half-written file under the target's name. Used for checkpoints, results, reports,
features and annotation files. A write that fails for a reason of the file system (disk
full, quota, I/O error, read-only) removes its temp file, leaves the previous file as it
was and raises ``WriteError``: a ``UserError``, so the tools print it as one line naming the
file and the cause (``ENOSPC: no space left on device``) and exit with code 2.
"""
import errno
import json
import os
import re
import secrets
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Optional, Tuple, Union

from common.errors import UserError

PathLike = Union[str, os.PathLike]
# temp names: '.<target's name, cut to 200 characters>.<8 of [a-z0-9_]>.tmp' beside the target
# (mkstemp's random part, or temp_name's hex); run_lock removes the ones a kill left
TEMP_NAME = re.compile(r'\.(?P<name>.{1,200})\.[a-z0-9_]{8}\.tmp', re.DOTALL)


class WriteError(UserError):
    """A file could not be written (disk full, I/O error...); the previous file is intact."""

    def __init__(self, path: PathLike, cause: str):
        super().__init__(f'cannot write {path}: {cause}')
        self.path, self.cause = Path(path), cause


def os_error_text(e: OSError) -> str:
    """``ENOSPC: no space left on device``: the errno's name and its description, one line."""
    if e.errno in errno.errorcode:
        text = e.strerror or os.strerror(e.errno)
        return f'{errno.errorcode[e.errno]}: {text[:1].lower()}{text[1:]}'
    return ' '.join(str(e).split()) or type(e).__name__


def os_error_in(e: BaseException) -> Optional[OSError]:
    """The OSError that ``e`` is or was raised while handling (libraries wrap them), or None."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _temp_affixes(target: Path) -> Tuple[str, str]:
    """The prefix and suffix of ``target``'s temp names (its name cut to keep them within 255 bytes)."""
    return f'.{target.name[:200]}.', '.tmp'


def temp_name(target: PathLike) -> Path:
    """A fresh temp name beside ``target`` (not created; a name of ``TEMP_NAME``'s scheme)."""
    target = Path(target)
    prefix, suffix = _temp_affixes(target)
    return target.parent / f'{prefix}{secrets.token_hex(4)}{suffix}'


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """A temp path beside ``path`` for the block to write (and close); renamed onto ``path`` after it.

    The temp file is fsynced before the rename. On any error it is removed; an OSError (or an
    error raised while handling one) becomes ``WriteError``.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix, suffix = _temp_affixes(path)
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        with open(tmp, 'rb') as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())  # mkstemp creates 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            _remove(tmp)
        cause = os_error_in(e) if isinstance(e, Exception) else None
        if cause is None or isinstance(e, UserError):
            raise
        raise WriteError(path, os_error_text(cause)) from None
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    try:  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def atomic_write(path: PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Write ``path`` through ``write(binary file object)``, atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, 'wb') as f:
            write(f)
    return path


def atomic_write_bytes(path: PathLike, data: Union[bytes, memoryview]) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically."""
    return atomic_write_bytes(path, json.dumps(obj).encode('utf-8'))
