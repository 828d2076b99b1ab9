"""The checkpoint files of a result path: ``save_<epoch>.pth``, ``save_latest.pth``, ``save_best.pth``.

One epoch's checkpoint is written once; its other names are hard links to the same file
(``place``), so ``save_latest.pth``, ``save_best.pth`` and ``save_<epoch>.pth`` of one epoch
take the disk space of one. A link is made under a temp name beside the target and renamed
onto it, so the replacement stays atomic; where the file system has no hard links the file
is copied the same way. Links are safe because no file of a result path is ever written in
place: the next save of ``save_latest.pth`` is a new file renamed over the name, which leaves
the epoch's other names untouched.

``prune`` keeps the newest numbered saves (``--keep_checkpoints``). It deletes only regular
files whose whole name is ``save_<digits>.pth`` and at or below the current epoch; it is
called by the run holding the result path's lock. Standard library only.
"""
import errno
import os
import re
import shutil
from pathlib import Path
from typing import List, Tuple

from common.atomic import _sync_directory  # the same durability as atomic_path's renames
from common.atomic import WriteError, atomic_path, os_error_text, temp_name

NUMBERED = re.compile(r'save_(\d+)\.pth')
NO_LINK = (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS)


def numbered(result_path: Path) -> List[Tuple[int, Path]]:
    """The ``save_<epoch>.pth`` regular files of ``result_path`` as (epoch, path), oldest first."""
    found = []
    for entry in os.scandir(result_path) if result_path.is_dir() else []:
        match = NUMBERED.fullmatch(entry.name)
        if match and entry.is_file(follow_symlinks=False):
            found.append((int(match.group(1)), Path(entry.path)))
    return sorted(found)


def _link_atomically(source: Path, target: Path) -> None:
    tmp = temp_name(target)
    os.link(source, tmp)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    _sync_directory(target.parent)


def place(source: Path, target: Path) -> str:
    """Make ``target`` name the same content as ``source``, atomically; 'link' or 'copy' (no hard links here)."""
    if source == target:
        return 'link'
    try:
        _link_atomically(source, target)
        return 'link'
    except OSError as e:
        if e.errno not in NO_LINK:
            raise WriteError(target, os_error_text(e)) from None
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return 'copy'


def prune(result_path: Path, keep: int, epoch: int) -> List[Path]:
    """Delete all but the ``keep`` newest ``save_<N>.pth`` with N <= ``epoch`` (0: keep all); the deleted paths.

    Saves numbered after ``epoch`` (left by a run resumed from an earlier one) are not touched.
    """
    if keep <= 0:
        return []
    older = [path for n, path in numbered(result_path) if n <= epoch][:-keep]
    for path in older:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    return older
