"""Write a subset's videos into tar shards (``python -m util_scripts.write_shards``).

The videos of an annotation file's subset (found under the video root as training finds them,
any ``--file_type``) go, in a seeded shuffled order, into WebDataset tar shards of about
``shard_mb`` MB (``datasets.formats.shard_index`` for what a sample holds). Each shard is
written under a temp name, read back and checked (every key, every sample's metadata), then
renamed; after each shard a progress record (``<subset>.shards.partial.json``) says where the
next one starts, so an interrupted run continues there (shards already written are checked
against their recorded size and SHA-256). A video that cannot be read is reported, counted and
listed in the index's ``failed``; the index is written last.
"""
import hashlib
import json
import random
from collections import deque
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from common.atomic import atomic_path, atomic_write_json
from common.faults import report_fault
from common.pool import worker_pool
from common.progress import progress
from datasets.annotations import VideoList
from datasets.formats.video_layout import IMAGE_TEMPLATE
from datasets.formats import frame_table_file
from datasets.formats.shard_index import ShardIndexError, index_name, index_record, shard_name
from datasets.formats.video_files import UNREADABLE, UnreadableVideo, frame_table, table_fields
from datasets.records import VideoRecord
from datasets.shards.reader import sample_key, tar_samples

PARTIAL = '.shards.partial.json'


class SampleError(Exception):
    """A video that cannot be written (the message says why)."""


def _frames_sample(record: VideoRecord, read: Callable[[int], Optional[bytes]]) -> Tuple[Dict[str, Any], bytes]:
    sizes, parts = [], []
    for i in record.frames:
        data = read(i) or b''
        sizes.append(len(data))
        parts.append(data)
    if not any(sizes):
        raise SampleError('no frame could be read')
    return {'ext': 'jpgs', 'frame_bytes': sizes}, b''.join(parts)


def _jpg_frames(record: VideoRecord) -> Tuple[Dict[str, Any], bytes]:
    def read(i: int) -> Optional[bytes]:
        try:
            return (record.path / IMAGE_TEMPLATE.format(i)).read_bytes()
        except OSError:
            return None
    if not record.path.is_dir():
        raise SampleError(f'{record.path}: frame folder not found')
    return _frames_sample(record, read)


def _hdf5_frames(record: VideoRecord) -> Tuple[Dict[str, Any], bytes]:
    import h5py
    try:
        with h5py.File(record.path, 'r') as h5:
            video = h5['video']

            def read(i: int) -> Optional[bytes]:
                try:
                    return bytes(video[i]) if 0 <= i < len(video) else None
                except (OSError, RuntimeError, ValueError):
                    return None
            return _frames_sample(record, read)
    except (OSError, KeyError, RuntimeError, ValueError) as e:
        raise SampleError(f'{record.path}: unreadable hdf5 ({str(e).splitlines()[0]})') from None


def _video_file(record: VideoRecord) -> Tuple[Dict[str, Any], bytes, bytes]:
    try:
        table = frame_table(record.path)
        stored = json.dumps(frame_table_file.table_record(record.path, table_fields(table))).encode()
        payload = record.path.read_bytes()
    except UnreadableVideo as e:
        raise SampleError(f'{record.path}: {e}') from None
    except UNREADABLE as e:
        raise SampleError(f'{record.path}: unreadable video ({str(e).splitlines()[0]})') from None
    fps = None if table.rate is None else float(table.rate)
    return {'ext': record.path.suffix.lower().lstrip('.') or 'video', 'fps': fps}, payload, stored


def make_sample(record: VideoRecord, file_type: str, labels: List[str], k: int) -> Dict[str, Any]:
    """The tar sample (WebDataset's dict: ``__key__`` and one bytes value per member) of ``record``."""
    return _keyed(read_members(record, file_type, labels), k)


def _members_or_error(record: VideoRecord, file_type: str, labels: List[str]) -> Any:
    """``read_members``' result, or its SampleError's message (what a pool worker sends back)."""
    try:
        return read_members(record, file_type, labels)
    except SampleError as e:
        return str(e)


def _read_ahead(pool: Any, records: Iterator[VideoRecord], file_type: str, labels: List[str],
                ahead: int) -> Iterator[Any]:
    """The pool's ``_members_or_error`` of each record, in order, at most ``ahead`` in flight (memory stays flat)."""
    pending: 'deque[Any]' = deque()
    for record in records:
        pending.append(pool.submit(_members_or_error, record, file_type, labels))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def read_members(record: VideoRecord, file_type: str, labels: List[str]) -> Dict[str, bytes]:
    """The members of ``record``'s sample, its key aside: ``json`` (metadata), the payload, the frame table."""
    table = None
    if file_type == 'video':
        meta, payload, table = _video_file(record)
    else:
        meta, payload = (_jpg_frames if file_type == 'jpg' else _hdf5_frames)(record)
    meta.update(id=record.video_id, labels=[labels[i] for i in record.label_set], start=record.frames.start,
                stop=record.frames.stop, segment=list(record.segment), file_type=file_type)
    members = {'json': json.dumps(meta).encode(), meta['ext']: payload}
    if table is not None:
        members['frametable.json'] = table
    return members


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


class _HashedFile:
    """A file being written, hashed as it is (the shard's SHA-256 without reading it a second time)."""

    def __init__(self, path: Path):
        self.file, self.digest = open(path, 'wb'), hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.file.write(data)

    def close(self) -> None:
        self.file.close()


def _verify(path: Path, first: int, count: int, offsets: List[int]) -> None:
    """Read a written shard back: its samples are ``first``.. in order, at ``offsets``, each with its metadata."""
    with open(path, 'rb') as f:
        seen = 0
        for j, sample in enumerate(tar_samples(f, str(path))):
            meta = json.loads(sample.get('json', b'null'))
            if sample['__key__'] != sample_key(first + j) or not isinstance(meta, dict) or meta.get('ext') not in sample:
                raise ShardIndexError(f'{path}: sample {j} reads back wrong')
            seen += 1
        for j, offset in enumerate(offsets):
            f.seek(offset)
            if not f.read(100).rstrip(b'\0').decode('ascii', 'replace').startswith(sample_key(first + j) + '.'):
                raise ShardIndexError(f'{path}: sample {j} is not at its offset {offset}')
    if seen != count:
        raise ShardIndexError(f'{path}: {seen} samples read back, {count} written')


class ShardWriter:
    """One subset's shards under ``out``: ``add(sample)``, then ``close_shard()``; ``abort()`` drops an open one."""

    def __init__(self, out: Path, subset: str, shard_bytes: int):
        self.out, self.subset, self.shard_bytes = out, subset, shard_bytes
        self.shards: List[Dict[str, Any]] = []
        self.tar: Any = None

    def _open(self) -> None:
        from webdataset.writer import TarWriter
        self.name = shard_name(self.subset, len(self.shards))
        self.context = atomic_path(self.out / self.name)
        self.tmp = self.context.__enter__()
        self.file = _HashedFile(self.tmp)
        self.tar = TarWriter(self.file, encoder=False, mtime=0)  # int: no PAX header per member
        self.offsets: List[int] = []
        self.first = self.samples_before()

    def samples_before(self) -> int:
        """Samples in the shards already closed."""
        return sum(s['samples'] for s in self.shards)

    def next_key(self) -> int:
        """The sample number the next sample gets."""
        return self.samples_before() + (len(self.offsets) if self.tar is not None else 0)

    def add(self, sample: Dict[str, Any]) -> bool:
        """Append ``sample`` (keyed ``next_key()``) to the open shard; True when that filled and closed it."""
        if self.tar is None:
            self._open()
        self.offsets.append(self.tar.tarstream.offset)
        self.tar.write(sample)
        if self.tar.tarstream.offset >= self.shard_bytes:
            self.close_shard()
            return True
        return False

    def abort(self) -> None:
        """Drop the open shard (its temp file removed): the run stopped before it was full."""
        if self.tar is not None:
            self.file.close()
            self.context.__exit__(KeyboardInterrupt, KeyboardInterrupt(), None)
            self.tar = None

    def close_shard(self) -> Optional[Dict[str, Any]]:
        """Close, check and rename the open shard (None when none is open); its index entry."""
        if self.tar is None:
            return None
        try:
            self.tar.close()
            self.file.close()
            _verify(self.tmp, self.first, len(self.offsets), self.offsets)
            entry = {'name': self.name, 'samples': len(self.offsets), 'bytes': self.tmp.stat().st_size,
                     'sha256': self.file.digest.hexdigest(), 'offsets': self.offsets}
        except BaseException as e:
            self.context.__exit__(type(e), e, e.__traceback__)
            raise
        self.context.__exit__(None, None, None)
        self.tar = None
        self.shards.append(entry)
        return entry


def _keyed(members: Any, k: int) -> Dict[str, Any]:
    """A pool worker's members as sample number ``k`` (its error message raised as SampleError)."""
    if isinstance(members, str):
        raise SampleError(members)
    return {'__key__': sample_key(k), **members}


def _resumed(out: Path, subset: str, plan: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The shards an interrupted run with the same ``plan`` closed (each with where the next one starts)."""
    path = out / f'{subset}{PARTIAL}'
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(state, dict) or state.get('plan') != plan:
        print(f'{path}: written with other options; starting {subset} again')
        return []
    kept: List[Dict[str, Any]] = []
    for entry in state.get('shards', []):
        shard = out / str(entry.get('name'))
        if shard.name != shard_name(subset, len(kept)) or not shard.is_file() \
                or shard.stat().st_size != entry.get('bytes') or _sha256(shard) != entry.get('sha256'):
            print(f'{shard}: not as recorded; writing {subset} from there again')
            break
        kept.append(entry)
    return kept


def write_subset(videos: VideoList, out: Path, file_type: str, shard_mb: float, seed: int,
                 show_progress: bool = True, n_jobs: int = 1) -> Dict[str, Any]:
    """Write the shards and index of ``videos`` (one subset) into ``out``; the index written. ``n_jobs`` processes
    read the videos (frame tables built where none is stored), the shards are written here, in order."""
    subset = videos.subset
    records = list(range(len(videos.records)))
    random.Random(seed).shuffle(records)
    plan = {'records': len(records), 'file_type': file_type, 'shard_mb': shard_mb, 'seed': seed,
            'ids': hashlib.sha256('\n'.join(videos.records[i].video_id for i in records).encode()).hexdigest()}
    closed = _resumed(out, subset, plan)
    start = int(closed[-1]['next_record']) if closed else 0
    failed: List[Dict[str, str]] = list(closed[-1]['failed']) if closed else \
        [{'id': vid, 'reason': 'not on disk'} for vid in videos.missing] + \
        [{'id': vid, 'reason': 'no frames'} for vid in videos.empty]
    if start:
        print(f'{subset}: continuing after {len(closed)} shards ({start} of {len(records)} videos done)')
    writer = ShardWriter(out, subset, int(shard_mb * (1 << 20)))
    writer.shards = [{k: v for k, v in e.items() if k not in ('next_record', 'failed')} for e in closed]

    def shard_closed(next_record: int) -> None:
        closed.append(dict(writer.shards[-1], next_record=next_record, failed=list(failed)))
        atomic_write_json(out / f'{subset}{PARTIAL}', {'plan': plan, 'shards': closed})

    most = max((len(videos.records[i].label_set) for i in records), default=1)
    for stale in out.glob(f'.{subset}-*.tmp'):  # a shard a killed run was writing
        stale.unlink(missing_ok=True)
    todo = (videos.records[records[n]] for n in range(start, len(records)))
    pool = worker_pool(n_jobs) if n_jobs > 1 else None
    read = _read_ahead(pool, todo, file_type, videos.labels, 4 * n_jobs) if pool else None
    try:
        for n in progress(range(start, len(records)), total=len(records), initial=start, desc=f'{subset} shards',
                          unit='videos', enabled=show_progress):
            record = videos.records[records[n]]
            try:
                sample = make_sample(record, file_type, videos.labels, writer.next_key()) if read is None else \
                    _keyed(next(read), writer.next_key())
            except SampleError as e:
                report_fault(f'{e}; not written')
                failed.append({'id': record.video_id, 'reason': str(e)})
                continue
            if writer.add(sample):
                shard_closed(n + 1)
        if writer.close_shard() is not None:
            shard_closed(len(records))
    except BaseException:
        writer.abort()
        raise
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    if not writer.shards:
        raise ShardIndexError(f'{subset}: no video could be written ({len(failed)} failed)')
    index = index_record(subset, 'video' if file_type == 'video' else 'jpgs', file_type, videos.labels,
                         writer.shards, failed, max(most, 1), seed)
    atomic_write_json(out / index_name(subset), index)
    (out / f'{subset}{PARTIAL}').unlink(missing_ok=True)
    return index
