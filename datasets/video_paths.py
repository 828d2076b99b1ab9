"""Where an annotation's videos are on disk, checked in bulk, and never outside their video root.

``FolderListings`` lists each folder once (``os.scandir``) and answers whether a path exists
from that listing: at Kinetics scale a few hundred listings replace 700,000 ``stat`` calls.
``confine`` joins a path taken from an annotation file (an entry's ``video_path``, or a
class name and a video id) to its video root and refuses one that leads out of it: an
absolute path elsewhere or a ``..`` that climbs above the root. The check is lexical (no
symbolic link is resolved), so a root may link its class folders to other disks.
Which file of a folder is a video is ``video_layout.video_entries``' rule, the builders' too.
"""
import os
import re
from typing import Dict, List, Optional, Set, Tuple

from datasets.formats.video_layout import video_entries

# a relative path already in normal form: names that are not '.' or '..', joined by single separators
_NAME = r'(?!\.\.?(?:/|\Z))[^/]+'
_PLAIN = re.compile(f'{_NAME}(?:/{_NAME})*\\Z' if os.sep == '/' else r'(?!)')


def confine(root: str, given: str) -> Optional[str]:
    """``root`` joined with ``given`` (normalised), or None when ``given`` leads out of ``root``.

    An absolute ``given`` is accepted when it lies inside ``root`` (compared as absolute
    paths) and is then returned relative to ``root`` as written.
    """
    if _PLAIN.match(given):  # the usual case, checked at a fraction of normpath's cost
        return f'{root}{os.sep}{given}'
    if os.path.isabs(given):
        base = os.path.abspath(root)
        relative = os.path.relpath(os.path.normpath(given), base)
    else:
        relative = os.path.normpath(given)
    if relative in (os.curdir, os.pardir) or relative.startswith(os.pardir + os.sep) or os.path.isabs(relative):
        return None
    return os.path.join(root, relative)


def _split(path: str) -> Tuple[str, str]:
    """``os.path.split`` for the normalised paths ``confine`` gives, at a fraction of its cost."""
    folder, sep, name = path.rpartition(os.sep)
    return (folder or sep), name


class FolderListings:
    """The entries of each folder, each folder listed once.

    A symbolic link counts only when its target exists (as ``Path.exists`` sees it); a folder
    that cannot be listed is empty.
    """

    def __init__(self) -> None:
        self._names: Dict[str, Set[str]] = {}
        self._files: Dict[str, List[str]] = {}  # the names of files, in listing order
        self._stems: Dict[str, Dict[str, str]] = {}  # built on first use: only video files are found by stem

    def _scan(self, folder: str) -> None:
        names: Set[str] = set()
        files: List[str] = []
        try:
            with os.scandir(folder or os.curdir) as entries:
                for entry in entries:
                    if entry.is_symlink() and not os.path.exists(entry.path):
                        continue
                    names.add(entry.name)
                    if entry.is_file():
                        files.append(entry.name)
        except OSError:
            pass
        self._names[folder], self._files[folder] = names, files

    def exists(self, path: str) -> bool:
        """Whether ``path`` is an entry of its folder's listing."""
        folder, name = _split(path)
        if folder not in self._names:
            self._scan(folder)
        return name in self._names[folder]

    def video_file(self, base: str) -> Optional[str]:
        """The video file whose id is ``base``'s name, by ``video_layout.video_entries``' rule, or None."""
        folder, name = _split(base)
        stems = self._stems.get(folder)
        if stems is None:
            if folder not in self._files:
                self._scan(folder)
            entries = video_entries(self._files.pop(folder), 'video')
            stems = self._stems[folder] = {video_id: os.path.join(folder, n) for video_id, n in entries.items()}
        return stems.get(name)

    def resolve(self, base: str, file_type: str) -> Optional[str]:
        """Where the video at ``base`` (no suffix) is for ``file_type``, or None when it is not there."""
        if file_type == 'video':
            return self.video_file(base)
        path = base + '.hdf5' if file_type == 'hdf5' else base
        return path if self.exists(path) else None
