"""A subset's shards as the clip datasets see a subset: its records and a loader of their frames.

``shard_videos`` stands where ``annotations.load_video_list`` stands for files: labels, records
and a summary line. Its records are read from the shards when a worker first asks for one
(``ShardRecords``), so no per-video table is built in memory; ``ShardLoader`` decodes a sample's
frames with the loaders' own code: JPEG frames at the scale their crop needs, and a video through
``VideoLoader`` on a copy in a private temp folder (with the frame table the shard carries), so
seeks stay verified and frames exact. A sample its shard cannot give is a record with no frames:
the datasets report it and count it as every unreadable video.
"""
import multiprocessing.util
import os
import re
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from common.processes import pid_alive
from datasets.decode import VideoReadError
from datasets.formats import frame_table_file
from datasets.formats.shard_index import ShardIndexError
from datasets.frame_sizes import sampled_size
from datasets.loaders import jpeg_clip
from datasets.records import RecordTable, VideoRecord
from datasets.shards.reader import FileRange, ShardFault, ShardReader, ShardSet, read_index
from datasets.video_loader import VideoLoader

TEMP_PREFIX = 'video-shards-'


class ShardRecords:
    """``records[k]``: sample ``k``'s record, read from its shard on first use (a record with no frames,
    its path saying why, when the shard cannot give it)."""

    def __init__(self, reader: ShardReader):
        self.reader, self.shards = reader, reader.shards
        self.table: Optional[RecordTable] = None

    def __len__(self) -> int:
        return len(self.shards)

    def record(self, k: int, meta: Optional[Dict[str, Any]], why: str = '') -> VideoRecord:
        """The record of sample ``k`` from its metadata (None: a failed sample, ``why``)."""
        if meta is None:
            return VideoRecord(self.shards.where(k), -1, Path(why), range(0), (0, 0))
        labels = tuple(self.reader.label_index[name] for name in meta['labels'])
        return VideoRecord(meta['id'], labels[0] if labels else -1, Path(self.shards.where(k)),
                           range(meta['start'], meta['stop']), tuple(meta['segment']),
                           labels if len(labels) > 1 else ())

    def __getitem__(self, k: int) -> VideoRecord:
        try:
            return self.record(k, self.reader.sample(int(k))['meta'])
        except ShardFault as e:
            return self.record(k, None, str(e))

    def __iter__(self) -> Iterator[VideoRecord]:
        """Every record, in order: one pass over the shards, kept in flat arrays for the next (the results'
        reports read the labels of a subset this way, several times)."""
        if self.table is None:
            self.table = RecordTable.from_records(self.record(k, meta, f'{self.shards.where(k)}: unreadable')
                                                  for k, meta in self.reader.metas())
        return iter(self.table)

    def first_multilabel(self) -> Optional[VideoRecord]:
        """A stand-in record when the index says a sample has several labels (the datasets refuse them then)."""
        most = self.shards.index['max_labels']
        if most <= 1:
            return None
        return VideoRecord(f'a sample of {self.shards.source}', 0, Path(''), range(0), (0, 0), tuple(range(most)))


class ShardVideos:
    """A subset's shards where a ``VideoList`` would be: ``labels``, ``records``, ``summary()``."""

    def __init__(self, shards: ShardSet, capacity: int):
        self.shards, self.labels = shards, shards.labels
        self.records = ShardRecords(ShardReader(shards, capacity))

    def summary(self) -> str:
        """One line: samples, shards, classes, and the videos the writer could not store."""
        failed = self.shards.index['failed']
        line = f'{len(self.shards)} videos in {len(self.shards.names)} shards, {len(self.labels)} classes'
        if failed:
            line += f"; {len(failed)} not written ({', '.join(str(f.get('id')) for f in failed[:3])}" + \
                (', ...)' if len(failed) > 3 else ')')
        return line

    def subset_note(self) -> str:
        return ''


def shard_videos(source: str, subset: str, labels: Optional[Sequence[str]], capacity: int = 72) -> ShardVideos:
    """The shards of ``subset`` under ``source``; ``labels`` (the annotation file's) must be the index's."""
    shards = ShardSet(source, read_index(source, subset))
    if labels is not None and list(labels) != shards.labels:
        first = next((k for k, (a, b) in enumerate(zip(shards.labels, labels)) if a != b), min(len(labels),
                                                                                             len(shards.labels)))
        raise ShardIndexError(f'{source}: the shards of {subset} were written with {len(shards.labels)} classes, the '
                              f'annotation file has {len(labels)}, and class {first} differs '
                              f'({_label(shards.labels, first)} in the shards, {_label(labels, first)} in the file): '
                              'use the annotation file they were written from, or write them again from this one')
    return ShardVideos(shards, capacity)


def _label(labels: Sequence[str], k: int) -> str:
    return repr(labels[k]) if k < len(labels) else 'none'


def _stale_temp_folders(base: str) -> None:
    """Remove the temp folders of processes that died without removing theirs (a killed worker)."""
    for name in os.listdir(base):
        m = re.fullmatch(re.escape(TEMP_PREFIX) + r'(\d+)-\w+', name)
        if m and not pid_alive(int(m.group(1))):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


class ShardLoader:
    """Frames of shard samples: ``loader(record.path, indices)`` as every loader (T x C x H x W, bad count)."""

    def __init__(self, videos: ShardVideos, scaled: bool = False, planar: bool = False, open_videos: int = 8):
        self.reader = videos.records.reader
        self.shards = videos.shards
        self.number = {name: s for s, name in enumerate(self.shards.names)}
        self.scaled = scaled
        self.video = VideoLoader(planar=planar)
        self.open_videos = open_videos
        self.copies: 'OrderedDict[int, Path]' = OrderedDict()
        self.folder: Optional[str] = None
        self.pid = os.getpid()

    def __getstate__(self) -> Dict[str, Any]:
        return {**self.__dict__, 'copies': OrderedDict(), 'folder': None}

    def _sample(self, path: Path) -> Tuple[int, Dict[str, Any]]:
        name, _, place = str(path).rpartition('#')
        if name not in self.number or not place.isdigit():
            raise VideoReadError(f'{path}: not a sample of {self.shards.source}')
        k = int(self.shards.starts[self.number[name]]) + int(place)
        try:
            return k, self.reader.sample(k)
        except ShardFault as e:
            raise VideoReadError(str(e)) from None

    def __call__(self, path: Path, indices: Sequence[int]) -> Tuple[Any, int]:
        k, sample = self._sample(path)
        where = f"{path} ({sample['meta']['id']})"
        if self.shards.payload == 'jpgs':
            return self._frames(sample, indices, where)
        copy = self._copy(k, sample)
        try:
            return self.video(copy, indices)
        except VideoReadError as e:
            raise VideoReadError(str(e).replace(str(copy), where)) from None

    def _frames(self, sample: Dict[str, Any], indices: Sequence[int], where: str) -> Tuple[Any, int]:
        meta, payload = sample['meta'], sample['payload']
        start, stop = meta['start'], meta['stop']
        ends = np.cumsum([0] + meta['frame_bytes'])

        def span(i: int) -> Optional[Tuple[int, int]]:  # None: outside the video, or stored empty (missing)
            k = i - start
            return (int(ends[k]), int(ends[k + 1])) if 0 <= k < stop - start and ends[k] < ends[k + 1] else None

        def pieces(wanted: Sequence[int]) -> Dict[int, Optional[bytes]]:
            """Frames' bytes (None where missing); from a local shard only these frames are read, with one open."""
            found = [i for i in wanted if span(i)]
            data = payload.pieces([span(i) for i in found]) if isinstance(payload, FileRange) else \
                [payload[slice(*span(i))] for i in found]
            return {**dict.fromkeys(wanted), **dict(zip(found, data))}

        return jpeg_clip(pieces(list(dict.fromkeys(indices))), indices, where, lambda i: pieces([i])[i],
                         lambda: sampled_size(stop - start, lambda p: pieces([start + p])[start + p]), self.scaled)

    def _temp_folder(self) -> str:
        if self.folder is None or self.pid != os.getpid():
            self.pid, self.copies = os.getpid(), OrderedDict()
            base = '/dev/shm' if os.access('/dev/shm', os.W_OK) else tempfile.gettempdir()
            _stale_temp_folders(base)
            self.folder = tempfile.mkdtemp(prefix=f'{TEMP_PREFIX}{self.pid}-', dir=base)
            # DataLoader workers leave through multiprocessing's exit, not atexit: its finalizers run there
            multiprocessing.util.Finalize(self, shutil.rmtree, args=(self.folder, True), exitpriority=0)
        return self.folder

    def _copy(self, k: int, sample: Dict[str, Any]) -> Path:
        """The sample's video as a file in this process's temp folder (the last ``open_videos`` kept)."""
        folder = self._temp_folder()
        if k in self.copies:
            self.copies.move_to_end(k)
            return self.copies[k]
        path = Path(folder) / f"{k}.{sample['meta'].get('ext', 'mp4')}"
        path.write_bytes(bytes(sample['payload']))
        if sample['table'] is not None:
            frame_table_file.table_path(path).write_bytes(sample['table'])
        self.copies[k] = path
        while len(self.copies) > self.open_videos:
            _, old = self.copies.popitem(last=False)
            self.video.forget(old)
            for p in (old, frame_table_file.table_path(old)):
                p.unlink(missing_ok=True)
        return path


def is_sharded(dataset: Any) -> bool:
    """Whether ``dataset`` (or the dataset a ``Subset`` wraps) reads shards."""
    dataset = getattr(dataset, 'dataset', dataset)
    return isinstance(getattr(dataset, 'videos', None), ShardVideos)

