"""Samples out of a subset's tar shards, read the way the epoch's order asks for them.

``ShardSet`` is the subset's index (``datasets.formats.shard_index``) and its source: sample
numbers 0..N-1 run through the shards in index order. ``ShardReader`` gives sample ``k`` to the
process that asks: from a bounded cache of the samples last read; from a local shard, at the
sample's byte offset (its tar headers parsed there, its large members read only where the loader
needs them); from a remote one (WebDataset's tar iterator over WebDataset's opener: a URL or a
``pipe:`` command), by reading on in the shard's stream, or from its start again. The epoch's
order (``datasets.shards.order``) asks each worker for its samples in stream order up to a block
shuffle, so each shard is read once per epoch.

A sample that cannot be read is a data fault, counted by the datasets as an unreadable video: a
local sample fails alone; in a remote shard, a stream cannot go past the damage, so its samples
from there on fail (one warning per shard and process).
"""
import os
import tarfile
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from common.faults import report_fault
from datasets.formats.shard_index import (ShardIndexError, index_name, is_remote, location, parse_index,
                                          sample_meta)

KEY_DIGITS = 9
LAZY_BYTES = 64 << 10  # members larger than this are read when used (local shards)


class ShardFault(Exception):
    """A sample that cannot be read from its shard: ``'<shard>#<place>: why'``."""

    def __init__(self, where: str, why: str):
        super().__init__(f'{where}: {why}')
        self.why = why


def sample_key(k: int) -> str:
    """The tar key of sample number ``k`` of a subset."""
    return f'{k:0{KEY_DIGITS}d}'


def open_source(where: str) -> Any:
    """A binary stream of a local path, a URL or a ``pipe:`` command (WebDataset's opener)."""
    from webdataset.gopen import gopen
    return gopen(where, 'rb')


def _first_line(e: BaseException) -> str:
    text = str(e.args[0]) if e.args else type(e).__name__
    return ' '.join(text.split(' @ ')[0].split())


def _members(file: Any, where: str) -> Iterator[Dict[str, Any]]:
    """A tar stream's members; where the stream breaks, an end-of-shard mark first, so that the sample read
    before the break still comes out whole (the one being read comes out without its missing members)."""
    from webdataset.tariterators import tar_file_expander
    try:
        yield from tar_file_expander([{'url': where, 'stream': file}], eof_value=None)
    except Exception:
        yield {}
        raise


def tar_samples(file: Any, where: str) -> Iterator[Dict[str, Any]]:
    """The samples of a tar stream (members grouped by key: WebDataset's tar iterator and grouping)."""
    from webdataset.tariterators import group_by_keys
    return group_by_keys(_members(file, where))


def read_index(source: str, subset: str) -> Dict[str, Any]:
    """The checked index of ``subset`` under ``source`` (``ShardIndexError``: one line naming it)."""
    where = location(source, index_name(subset))
    try:
        with open_source(where) as f:
            text = f.read()
    except (OSError, ValueError) as e:
        raise ShardIndexError(f'{where}: cannot read the shard index of {subset} ({e})') from None
    if not text:
        raise ShardIndexError(f'{where}: no shard index of {subset} (empty or not found)')
    return parse_index(text, where)


class ShardSet:
    """A subset's shards: the index, where they are read from, and sample number -> (shard, place)."""

    def __init__(self, source: str, index: Dict[str, Any]):
        self.source, self.index = source, index
        self.names: List[str] = [s['name'] for s in index['shards']]
        self.counts = np.array([s['samples'] for s in index['shards']], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
        self.offsets = [np.asarray(s['offsets'], dtype=np.int64) for s in index['shards']]
        self.labels: List[str] = list(index['labels'])
        self.payload: str = index['payload']
        self.seekable = not is_remote(source)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, k: int) -> Tuple[int, int]:
        """(shard, place in it) of sample number ``k``."""
        if not 0 <= k < len(self):
            raise IndexError(f'sample {k} of {len(self)}')
        s = int(np.searchsorted(self.starts, k, side='right')) - 1
        return s, k - int(self.starts[s])

    def where(self, k: int) -> str:
        """'<shard>#<place>': how messages name sample ``k``."""
        s, j = self.locate(k)
        return f'{self.names[s]}#{j}'


class FileRange:
    """Bytes ``[start, start + size)`` of a local file, read when sliced (a sample's frames: only the clip's)."""

    def __init__(self, path: str, start: int, size: int):
        self.path, self.start, self.size = path, start, size

    def __len__(self) -> int:
        return self.size

    def pieces(self, spans: List[Tuple[int, int]]) -> List[bytes]:
        """The bytes of each ``(begin, end)`` span (relative to the range), with one open of the file."""
        with open(self.path, 'rb') as f:
            return [os.pread(f.fileno(), max(0, min(b, self.size) - a), self.start + a) for a, b in spans]

    def __getitem__(self, span: slice) -> bytes:
        return self.pieces([(span.start or 0, self.size if span.stop is None else span.stop)])[0]

    def __bytes__(self) -> bytes:
        return self[:]


class _Stream:
    """One open shard, read sample by sample from sample ``next`` on (a local one can jump to any sample)."""

    def __init__(self, shards: ShardSet, s: int):
        self.s, self.next, self.seekable = s, 0, shards.seekable
        self.where = location(shards.source, shards.names[s])
        self.offsets = shards.offsets[s]
        self.file = open_source(self.where)
        self.samples = None if self.seekable else tar_samples(self.file, self.where)

    def read(self) -> Dict[str, Any]:
        """Sample ``next`` as WebDataset groups it (StopIteration past the end); a local shard's large members
        (a video, a clip's JPEG frames) as ``FileRange``s, read when and where the loader needs them."""
        if self.samples is not None:
            return next(self.samples)
        if self.next >= len(self.offsets):
            raise StopIteration
        size = os.fstat(self.file.fileno()).st_size
        end = int(self.offsets[self.next + 1]) if self.next + 1 < len(self.offsets) else size
        self.file.seek(int(self.offsets[self.next]))
        tar = tarfile.open(fileobj=self.file, mode='r:')  # headers only: the members' data is skipped over
        sample: Dict[str, Any] = {}
        for info in tar:
            key, _, ext = info.name.partition('.')
            if info.offset >= end or sample.setdefault('__key__', key) != key:
                break
            if info.offset_data + info.size > size:
                raise EOFError(f'{info.name} needs {info.offset_data + info.size} bytes; the file has {size}')
            sample[ext] = FileRange(self.where, info.offset_data, info.size) if info.size > LAZY_BYTES else \
                tar.extractfile(info).read()
        return sample

    def close(self) -> None:
        self.samples = iter(())
        try:
            self.file.close()
        except Exception:  # noqa: BLE001 - a pipe whose command failed reports it here; the fault is already known
            pass


class ShardReader:
    """Samples of a ``ShardSet`` for one process: a cache of the last ``capacity`` read, a few shards open.

    ``sample(k)`` returns ``{'meta': checked .json, 'payload': bytes, 'table': bytes or None}`` or raises
    ``ShardFault``. Pickled into DataLoader workers without its streams or cache (each reads its own).
    """

    def __init__(self, shards: ShardSet, capacity: int = 72, open_shards: int = 4):
        self.shards, self.capacity, self.open_shards = shards, max(2, capacity), open_shards
        self.label_index = {name: i for i, name in enumerate(shards.labels)}
        self._reset()

    def _reset(self) -> None:
        self.cache: 'OrderedDict[int, Dict[str, Any]]' = OrderedDict()
        self.streams: 'OrderedDict[int, _Stream]' = OrderedDict()  # a block of the order may span two shards
        self.damaged: Dict[int, Tuple[int, str]] = {}  # shard -> (first place that fails, why)
        self.pid = os.getpid()

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state.update(cache=OrderedDict(), streams=OrderedDict(), damaged={})
        return state

    def sample(self, k: int) -> Dict[str, Any]:
        """Sample number ``k`` (``ShardFault`` when its shard cannot give it)."""
        if self.pid != os.getpid():  # a forked worker: nothing of the parent's streams is ours
            self._reset()
        if k in self.cache:
            self.cache.move_to_end(k)
            return self.cache[k]
        s, j = self.shards.locate(k)
        if s in self.damaged and j >= self.damaged[s][0]:
            raise ShardFault(self.shards.where(k), self.damaged[s][1])
        stream = self._stream(s, j)
        if stream is not None:
            self._read_to(stream, j)  # ShardFault for a local sample that cannot be read
        if k not in self.cache:
            raise ShardFault(self.shards.where(k), self.damaged.get(s, (0, 'not read'))[1])
        return self.cache[k]

    def _stream(self, s: int, j: int) -> Optional[_Stream]:
        """Shard ``s`` open where sample ``j`` is next or ahead (a stream past it starts again); None if it cannot."""
        stream = self.streams.pop(s, None)
        if stream is not None and stream.next > j and not stream.seekable:
            stream.close()
            stream = None
        if stream is None:
            try:
                stream = _Stream(self.shards, s)
            except (OSError, ValueError) as e:
                self._damage(s, 0, f'cannot open the shard ({" ".join(str(e).split())})')
                return None
            while len(self.streams) >= self.open_shards:
                self.streams.popitem(last=False)[1].close()
        if stream.seekable:
            stream.next = j
        self.streams[s] = stream
        return stream

    def _read_to(self, stream: _Stream, j: int) -> None:
        """Read ``stream`` on through sample ``j``, keeping what the order may still ask for. A local sample that
        cannot be read fails alone (whatever was read before: the order does not matter); a stream cannot go past
        it, so a remote shard's samples from there on fail."""
        s, base = stream.s, int(self.shards.starts[stream.s])
        while stream.next <= j:
            place = stream.next
            try:
                got = self._checked(stream.read(), base + place)
            except StopIteration:
                why = f'the shard ends after {place} of its {self.shards.counts[s]} samples'
            except ShardFault as e:  # a bad key or metadata: the rest of the shard is not trusted
                why = e.why
            except ValueError as e:
                why = f'unreadable ({" ".join(str(e).split())})'
            except Exception as e:  # noqa: BLE001 - tarfile, zlib and pipes raise many kinds for a cut stream
                why = f'cut short or corrupt ({type(e).__name__}: {_first_line(e)})'
            else:
                stream.next += 1
                if place >= j - self.capacity:
                    self._keep(base + place, got)
                continue
            if stream.seekable:
                raise ShardFault(self.shards.where(base + place), why)
            self._damage(s, place, why)
            return

    def _keep(self, k: int, sample: Dict[str, Any]) -> None:
        self.cache[k] = sample
        while len(self.cache) > self.capacity:
            self.cache.popitem(last=False)

    def _damage(self, s: int, place: int, why: str) -> None:
        """Samples of shard ``s`` from ``place`` on fail from now on; said once per shard."""
        if s in self.streams:
            self.streams.pop(s).close()
        if s not in self.damaged or place < self.damaged[s][0]:
            self.damaged[s] = (place, why)
            report_fault(f'{self.shards.names[s]}: {why}; its samples from #{place} on fail')

    def _checked(self, raw: Dict[str, Any], k: int) -> Dict[str, Any]:
        where = self.shards.where(k)
        if raw.get('__key__') != sample_key(k):
            raise ShardFault(where, f"sample {raw.get('__key__')!r} where {sample_key(k)!r} was due")
        if 'json' not in raw:
            raise ShardFault(where, 'no .json member')
        try:
            meta = sample_meta(bytes(raw['json']), self.label_index)
        except ShardIndexError as e:
            raise ShardFault(where, str(e)) from None
        ext = meta.get('ext', 'jpgs')
        if not isinstance(ext, str) or ext not in raw:
            raise ShardFault(where, f'no .{ext} member')
        table = raw.get('frametable.json')
        return {'meta': meta, 'payload': raw[ext], 'table': None if table is None else bytes(table)}

    def metas(self) -> Iterator[Tuple[int, Optional[Dict[str, Any]]]]:
        """(sample number, checked metadata or None where it cannot be read) of every sample, in order."""
        for k in range(len(self.shards)):
            try:
                yield k, self.sample(k)['meta']
            except ShardFault:
                yield k, None
