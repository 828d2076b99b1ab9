"""HDF5 files built in memory and written in one piece: a full disk cannot crash HDF5.

HDF5 writing straight to a file on a full disk can segfault the process (h5py 3, with the
sec2 and the Python-file drivers alike) after printing pages of errors. Built with the
``core`` driver and no backing store, the file never touches the disk until its finished
image is written by ordinary Python I/O, where a full disk is a plain OSError. The cost is
holding the file's bytes in memory, about twice, while it is written.
"""
import itertools
from contextlib import contextmanager
from typing import Callable, Iterator

import h5py

_names = itertools.count()


@contextmanager
def hdf5_in_memory() -> Iterator[h5py.File]:
    """A new, empty HDF5 file that lives in memory only."""
    # the name only identifies the file inside HDF5; nothing is read or written under it
    with h5py.File(f'in-memory-{next(_names)}.h5', 'w', driver='core', backing_store=False) as h5:
        yield h5


def file_image(h5: h5py.File) -> bytes:
    """The bytes of an open HDF5 file as they stand."""
    h5.flush()
    return h5.id.get_file_image()


def hdf5_image(build: Callable[[h5py.File], None]) -> bytes:
    """The bytes of a new HDF5 file filled by ``build(file)``, built in memory."""
    with hdf5_in_memory() as h5:
        build(h5)
        return file_image(h5)
