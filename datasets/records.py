"""Video records held in flat arrays, so that a dataset of 700,000 videos is a few dozen objects.

A list of Python objects per video costs hundreds of bytes each, and a forked DataLoader
worker that merely reads one writes its reference count, copying the page it lives on (and
a garbage collection in the worker touches them all): a worker's private memory grows with
every video it reads. ``RecordTable`` keeps the ids as one UTF-8 buffer with offsets
(``StringArray``), the paths as a folder index and what the file name adds to the id
(``PathArray``: each folder once), and labels and frame ranges as numpy arrays; indexing builds
a ``VideoRecord`` on the fly. It behaves as a read-only sequence of records: ``len``, indexing,
slicing, iteration, ``==`` with another table or a list of records, ``+``, and ``take``.
"""
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, Optional, Sequence, Tuple, Union

import numpy as np


@dataclass
class VideoRecord:
    """One sample: a video (or an ActivityNet segment) and where its frames are."""
    video_id: str
    label: int                  # index into labels; -1 for unlabeled (test) entries
    path: Path
    frames: range               # frame indices (1-based for jpg, 0-based for hdf5/video)
    segment: Tuple[int, int]    # [first, last + 1] as written to inference results
    labels: Tuple[int, ...] = ()  # every label of a multi-label entry (``label`` is the first)

    @property
    def label_set(self) -> Tuple[int, ...]:
        """Every label of the video, whether the entry is multi-label or not (``()``: unlabelled)."""
        return self.labels or ((self.label,) if self.label >= 0 else ())


def _offsets(lengths: np.ndarray) -> np.ndarray:
    """Where each of the rows of ``lengths`` starts, and the end (int32 while the total fits)."""
    out = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=out[1:])
    return out.astype(np.int32) if out[-1] < 2 ** 31 else out


def _gather(values: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """The variable-length rows ``rows`` of (values, offsets), as new (values, offsets)."""
    starts, lengths = offsets[rows], offsets[rows + 1] - offsets[rows]
    new = _offsets(lengths)
    source = np.repeat(starts - new[:-1], lengths) + np.arange(new[-1], dtype=np.int64)
    return values[source], new


class StringArray:
    """Strings as one UTF-8 buffer and their offsets into it."""

    def __init__(self, buffer: np.ndarray, offsets: np.ndarray):
        self.buffer, self.offsets = buffer, offsets

    @classmethod
    def of(cls, strings: Iterable[str]) -> 'StringArray':
        """The array of ``strings`` (any iterable of str)."""
        strings = strings if isinstance(strings, (list, tuple)) else list(strings)
        joined = ''.join(strings)
        if joined.isascii():  # one byte per character: no bytes object per string
            lengths = np.fromiter(map(len, strings), np.int64, len(strings))
            return cls(np.frombuffer(joined.encode('ascii'), np.uint8), _offsets(lengths))
        encoded = [s.encode('utf-8', 'surrogateescape') for s in strings]
        lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
        return cls(np.frombuffer(b''.join(encoded), np.uint8).copy(), _offsets(lengths))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, index: int) -> str:
        return self.buffer[self.offsets[index]:self.offsets[index + 1]].tobytes().decode('utf-8', 'surrogateescape')

    def take(self, rows: np.ndarray) -> 'StringArray':
        """The strings at ``rows``, in that order."""
        return StringArray(*_gather(self.buffer, self.offsets, rows))

    @staticmethod
    def concat(arrays: Sequence['StringArray']) -> 'StringArray':
        """The arrays one after another."""
        buffer = np.concatenate([a.buffer for a in arrays]).astype(np.uint8)
        return StringArray(buffer, _offsets(np.concatenate([np.diff(a.offsets) for a in arrays])))

    def __eq__(self, other: Any) -> bool:
        return (isinstance(other, StringArray) and np.array_equal(self.offsets, other.offsets)
                and np.array_equal(self.buffer, other.buffer))

    __hash__ = None  # type: ignore[assignment]


class PathArray:
    """Video paths as (folder, name): each folder stored once, a name that starts with the video id
    stored as the rest of it (``''`` for a frame folder named by its id, ``'.hdf5'``...), any other
    name after a separator (which no file name holds)."""

    def __init__(self, folders: StringArray, folder: np.ndarray, names: StringArray):
        self.folders, self.folder, self.names = folders, folder, names

    @classmethod
    def of(cls, ids: Sequence[str], paths: Sequence[str]) -> 'PathArray':
        """The array of ``paths`` (strings) of the videos ``ids``."""
        index: Dict[str, int] = {}
        folder, names = [], []
        for video_id, path in zip(ids, paths):
            head, sep, name = path.rpartition(os.sep)
            folder.append(index.setdefault(head or sep, len(index)))
            names.append(name[len(video_id):] if video_id and name.startswith(video_id) else os.sep + name)
        return cls(StringArray.of(list(index)), np.asarray(folder, np.int32).reshape(len(names)),
                   StringArray.of(names))

    def get(self, index: int, video_id: str) -> str:
        """The path of record ``index``, whose video id is ``video_id``."""
        folder, rest = self.folders[self.folder[index]], self.names[index]
        name = rest[1:] if rest.startswith(os.sep) else video_id + rest
        return os.path.join(folder, name) if folder else name

    def take(self, rows: np.ndarray) -> 'PathArray':
        """The paths at ``rows``, in that order."""
        return PathArray(self.folders, self.folder[rows], self.names.take(rows))

    @staticmethod
    def concat(arrays: Sequence['PathArray']) -> 'PathArray':
        """The arrays one after another."""
        starts = np.cumsum([0] + [len(a.folders) for a in arrays[:-1]])
        folder = np.concatenate([a.folder.astype(np.int64) + s for a, s in zip(arrays, starts)]).astype(np.int32)
        return PathArray(StringArray.concat([a.folders for a in arrays]), folder,
                         StringArray.concat([a.names for a in arrays]))

    def same_layout(self, other: 'PathArray') -> bool:
        """Whether both store the same folders, indices and names (then equal ids mean equal paths)."""
        return self.folders == other.folders and np.array_equal(self.folder, other.folder) and self.names == other.names


_NUMBERS = ('label', 'start', 'stop', 'label_values', 'label_offsets')


class RecordTable:
    """A read-only sequence of ``VideoRecord`` stored column by column.

    Columns: ``ids`` (``StringArray``), ``paths`` (``PathArray``), ``label`` (int32), ``start``/``stop`` (int32,
    the frame range, which is also the record's ``segment``), and the multi-label lists as
    ``label_values`` (int32) with ``label_offsets``.
    """

    def __init__(self, ids: StringArray, paths: PathArray, label: np.ndarray, start: np.ndarray,
                 stop: np.ndarray, label_values: np.ndarray, label_offsets: np.ndarray):
        self.ids, self.paths = ids, paths
        self.label, self.start, self.stop = label, start, stop
        self.label_values, self.label_offsets = label_values, label_offsets

    @classmethod
    def from_columns(cls, ids: Sequence[str], paths: Sequence[str], label: Sequence[int], start: Sequence[int],
                     stop: Sequence[int], labels: Optional[Sequence[Sequence[int]]] = None) -> 'RecordTable':
        """A table from per-record columns; ``labels``: each record's multi-label tuple (default none)."""
        n = len(ids)
        labels = labels if labels is not None else [()] * n
        lengths = np.fromiter(map(len, labels), np.int64, n)
        values = np.fromiter((x for row in labels for x in row), np.int32, int(lengths.sum()))
        column = lambda xs: np.asarray(xs, np.int32).reshape(n)  # noqa: E731
        return cls(StringArray.of(ids), PathArray.of(ids, paths), column(label), column(start), column(stop),
                   values, _offsets(lengths))

    @classmethod
    def from_records(cls, records: Iterable[VideoRecord]) -> 'RecordTable':
        """A table of ``records``; each one's frames must be a range of step 1 and its segment their ends."""
        records = list(records)
        bad = next((r for r in records if r.frames.step != 1 or tuple(r.segment) != (r.frames.start, r.frames.stop)),
                   None)
        if bad is not None:
            raise ValueError(f'video {bad.video_id}: frames {bad.frames} and segment {bad.segment} do not match '
                             '(a record holds consecutive frames and their ends as its segment)')
        return cls.from_columns([r.video_id for r in records], [str(r.path) for r in records],
                                [r.label for r in records], [r.frames.start for r in records],
                                [r.frames.stop for r in records], [tuple(r.labels) for r in records])

    @classmethod
    def of(cls, records: Union['RecordTable', Iterable[VideoRecord]]) -> 'RecordTable':
        """``records`` itself if it is a table, else a table of them."""
        return records if isinstance(records, RecordTable) else cls.from_records(records)

    def __len__(self) -> int:
        return len(self.label)

    def labels_of(self, index: int) -> Tuple[int, ...]:
        """The multi-label tuple of record ``index`` (``()`` for a single-label record)."""
        return tuple(self.label_values[self.label_offsets[index]:self.label_offsets[index + 1]].tolist())

    def __getitem__(self, index: Union[int, slice]) -> Union[VideoRecord, 'RecordTable']:
        if isinstance(index, slice):
            return self.take(np.arange(len(self))[index])
        n = len(self)
        i = int(index)
        if not -n <= i < n:
            raise IndexError(f'record {index} of {n}')
        i %= n
        video_id, start, stop = self.ids[i], int(self.start[i]), int(self.stop[i])
        return VideoRecord(video_id, int(self.label[i]), Path(self.paths.get(i, video_id)), range(start, stop),
                           (start, stop), self.labels_of(i))

    def __iter__(self) -> Iterator[VideoRecord]:
        return (self[i] for i in range(len(self)))

    def take(self, rows: Union[np.ndarray, Sequence[int]]) -> 'RecordTable':
        """The records at ``rows`` (indices), in that order."""
        rows = np.asarray(rows, np.int64).reshape(-1)
        values, offsets = _gather(self.label_values, self.label_offsets, rows)
        return RecordTable(self.ids.take(rows), self.paths.take(rows), self.label[rows], self.start[rows],
                           self.stop[rows], values, offsets)

    def with_labels(self, label: np.ndarray, label_values: np.ndarray, label_offsets: np.ndarray) -> 'RecordTable':
        """The same videos with other labels (a remapped label space)."""
        return RecordTable(self.ids, self.paths, np.asarray(label, np.int32), self.start, self.stop,
                           np.asarray(label_values, np.int32), label_offsets)

    def label_counts(self) -> np.ndarray:
        """How many labels each record's multi-label tuple holds (0 for single-label records)."""
        return np.diff(self.label_offsets)

    def first_multilabel(self) -> Optional[VideoRecord]:
        """The first record with more than one label, or None."""
        rows = np.flatnonzero(self.label_counts() > 1)
        return self[int(rows[0])] if len(rows) else None

    @staticmethod
    def concat(tables: Sequence['RecordTable']) -> 'RecordTable':
        """The tables one after another."""
        tables = [t for t in tables if len(t)] or list(tables[:1]) or [RecordTable.from_columns([], [], [], [], [])]
        if len(tables) == 1:
            return tables[0]
        offsets = _offsets(np.concatenate([t.label_counts() for t in tables]))
        column = lambda name: np.concatenate([getattr(t, name) for t in tables])  # noqa: E731
        return RecordTable(StringArray.concat([t.ids for t in tables]), PathArray.concat([t.paths for t in tables]),
                           column('label'), column('start'), column('stop'), column('label_values'), offsets)

    def __add__(self, other: Iterable[VideoRecord]) -> 'RecordTable':
        return RecordTable.concat([self, RecordTable.of(other)])

    def __radd__(self, other: Iterable[VideoRecord]) -> 'RecordTable':
        return RecordTable.concat([RecordTable.of(other), self])

    def __eq__(self, other: Any) -> bool:
        if isinstance(other, RecordTable):
            return (len(self) == len(other) and self.ids == other.ids
                    and all(np.array_equal(getattr(self, k), getattr(other, k)) for k in _NUMBERS)
                    and (self.paths.same_layout(other.paths)
                         or all(a.path == b.path for a, b in zip(self, other))))
        if isinstance(other, (list, tuple)):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f'RecordTable({len(self)} records)'
