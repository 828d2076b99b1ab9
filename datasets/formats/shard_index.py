"""The index of a subset's tar shards (``<subset>.shards.json``) and where its shards are read from.

The shards are WebDataset tar files (``util_scripts.write_shards``): one sample per video, its
members ``<key>.json`` (id, labels, frames, fps, how the payload is stored) first, then the payload
(``<key>.mp4`` or the video's own extension, with ``<key>.frametable.json``; or ``<key>.jpgs``, the
JPEG frames as stored, one after another). The index beside them names each shard with its sample
count, size, SHA-256 and the byte offset of each sample (so a local shard can be entered at any
sample), the label list and the videos that could not be written. Everything in it is checked
when read: a shard's name never leaves its folder or reaches a shell unquoted.

A source (``--video_path``) is a folder, an ``http(s)://``, ``s3://`` or ``gs://`` prefix, or
``pipe:COMMAND`` with ``{name}`` where the file's name goes (``pipe:cat /data/shards/{name}``).
Standard library only.
"""
import json
import re
import shlex
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from common.errors import UserError

FORMAT, VERSION = 'video-shards', 1
SUFFIX = '.shards.json'
SHARD_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.tar')
MAX_INDEX_BYTES = 512 << 20
MAX_SAMPLES = 100_000_000
PAYLOADS = ('video', 'jpgs')


class ShardIndexError(UserError):
    """An index that cannot be used: one line naming the file and the problem."""


def index_name(subset: str) -> str:
    """The index file's name for ``subset``."""
    return f'{subset}{SUFFIX}'


def shard_name(subset: str, number: int) -> str:
    """The name of shard ``number`` of ``subset``."""
    return f'{subset}-{number:06d}.tar'


def is_remote(source: str) -> bool:
    """Whether ``source`` is read through a URL or a command rather than a local folder."""
    return source.startswith('pipe:') or re.match(r'[a-z][a-z0-9+.-]*://', source) is not None


def source_or_path(text: str) -> Any:
    """A ``--video_path``: a URL or ``pipe:`` command kept as written (a Path would fold its '//'), else a Path."""
    return text if is_remote(text) else Path(text)


def option_problem(opt: Any) -> Optional[str]:
    """Why the options cannot read (or must read) shards; None when they are fine."""
    remote = [p for p in opt.video_path or [] if isinstance(p, str)]
    if remote and opt.file_type != 'shards':
        return f'--video_path {remote[0]}: only --file_type shards reads from a URL or a pipe: command'
    if opt.file_type == 'shards' and (opt.input_type != 'rgb' or opt.pretext or len(opt.video_path or [None]) > 1
                                      or len(opt.annotation_path or []) > 1 or opt.decode_device == 'cuda'):
        return ('--file_type shards reads RGB clips from one --video_path with one --annotation_path (no --pretext, '
                'no --decode_device cuda): write the shards of each dataset with util_scripts.write_shards')
    return None


def location(source: str, name: str) -> str:
    """Where file ``name`` of ``source`` is read: a local path, a URL, or a ``pipe:`` command."""
    if not SHARD_NAME.fullmatch(name) and not name.endswith(SUFFIX):
        raise ShardIndexError(f'{name!r} is not a shard or index name')
    if source.startswith('pipe:'):
        if '{name}' not in source:
            raise ShardIndexError(f'{source}: a pipe: source needs {{name}} where the file name goes, '
                                  "e.g. 'pipe:cat /data/shards/{name}'")
        return source.replace('{name}', shlex.quote(name))
    if source.startswith('s3://'):  # WebDataset's opener has no s3 scheme: the AWS command line streams it
        return f"pipe:aws s3 cp {shlex.quote(source.rstrip('/') + '/' + name)} -"
    if is_remote(source):
        return source.rstrip('/') + '/' + name
    return str(Path(source) / name)


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ShardIndexError(f'{what} is {value!r}, not an integer in [{lo}, {hi}]')
    return value


def _shard(entry: Any, k: int) -> Dict[str, Any]:
    if not isinstance(entry, dict):
        raise ShardIndexError(f'shard {k} is not an object')
    name = entry.get('name')
    if not isinstance(name, str) or not SHARD_NAME.fullmatch(name):
        raise ShardIndexError(f'shard {k} has the name {name!r}: names are letters, digits, ".", "_", "-" and end .tar')
    size = _int(entry.get('bytes'), f'{name}: bytes', 1024, 1 << 50)
    count = _int(entry.get('samples'), f'{name}: samples', 0, MAX_SAMPLES)
    offsets = entry.get('offsets')
    if not isinstance(offsets, list) or len(offsets) != count:
        raise ShardIndexError(f'{name}: offsets must list one byte offset per sample ({count})')
    last = -1
    for offset in offsets:
        if isinstance(offset, bool) or not isinstance(offset, int) or not last < offset < size or offset % 512:
            raise ShardIndexError(f'{name}: the sample offsets must rise in 512-byte steps inside its {size} bytes')
        last = offset
    digest = entry.get('sha256')
    if not isinstance(digest, str) or not re.fullmatch(r'[0-9a-f]{64}', digest):
        raise ShardIndexError(f'{name}: sha256 is not 64 hex digits')
    return {'name': name, 'bytes': size, 'samples': count, 'offsets': offsets, 'sha256': digest}


def checked_index(data: Any, source: str) -> Dict[str, Any]:
    """The index ``data`` read from ``source``, every field range-checked (``ShardIndexError`` naming it)."""
    try:
        if not isinstance(data, dict) or data.get('format') != FORMAT:
            raise ShardIndexError(f'not a shard index (format {FORMAT!r} expected)')
        if data.get('version') != VERSION:
            raise ShardIndexError(f"version {data.get('version')!r}; this reads version {VERSION}")
        if data.get('payload') not in PAYLOADS:
            raise ShardIndexError(f"payload {data.get('payload')!r}, not one of {', '.join(PAYLOADS)}")
        labels = data.get('labels')
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise ShardIndexError('labels must be a list of names')
        shards = data.get('shards')
        if not isinstance(shards, list) or not shards:
            raise ShardIndexError('it lists no shard')
        checked = [_shard(entry, k) for k, entry in enumerate(shards)]
        if len({s['name'] for s in checked}) != len(checked):
            raise ShardIndexError('a shard is listed twice')
        total = _int(data.get('samples'), 'samples', 0, MAX_SAMPLES)
        if total != sum(s['samples'] for s in checked):
            raise ShardIndexError(f'samples is {total}, but its shards hold {sum(s["samples"] for s in checked)}')
        failed = data.get('failed', [])
        if not isinstance(failed, list) or not all(isinstance(f, dict) for f in failed):
            raise ShardIndexError('failed must be a list of {id, reason}')
        most = _int(data.get('max_labels', 1), 'max_labels', 0, 100_000)
    except ShardIndexError as e:
        raise ShardIndexError(f'{source}: {e}') from None
    return {**data, 'shards': checked, 'labels': labels, 'samples': total, 'failed': failed, 'max_labels': most}


def parse_index(text: bytes, source: str) -> Dict[str, Any]:
    """``checked_index`` of an index file's bytes."""
    if len(text) > MAX_INDEX_BYTES:
        raise ShardIndexError(f'{source}: larger than {MAX_INDEX_BYTES >> 20} MB: not a shard index')
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ShardIndexError(f'{source}: not JSON ({e})') from None
    return checked_index(data, source)


def index_record(subset: str, payload: str, file_type: str, labels: Sequence[str], shards: List[Dict[str, Any]],
                 failed: List[Dict[str, str]], max_labels: int, seed: int) -> Dict[str, Any]:
    """The index of ``subset``'s written ``shards`` (what ``write_shards`` stores)."""
    return {'format': FORMAT, 'version': VERSION, 'subset': subset, 'payload': payload, 'file_type': file_type,
            'samples': sum(s['samples'] for s in shards), 'labels': list(labels), 'max_labels': max_labels,
            'seed': seed, 'shards': shards, 'failed': failed}


def sample_meta(data: bytes, labels: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
    """A sample's ``.json`` member, checked (``ShardIndexError`` saying what is wrong; the caller names the sample)."""
    try:
        meta = json.loads(data)
        if not isinstance(meta, dict) or not isinstance(meta.get('id'), str) or not meta['id']:
            raise ShardIndexError('no id')
        names = meta.get('labels')
        if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
            raise ShardIndexError('labels must be a list of names')
        start = _int(meta.get('start'), 'start', 0, 1 << 31)
        stop = _int(meta.get('stop'), 'stop', start, 1 << 31)
        segment = meta.get('segment')
        if not (isinstance(segment, list) and len(segment) == 2 and all(isinstance(v, int) for v in segment)):
            raise ShardIndexError('segment must be [first, last + 1]')
        sizes = meta.get('frame_bytes')
        if sizes is not None and (not isinstance(sizes, list) or len(sizes) != stop - start
                                  or not all(isinstance(v, int) and v >= 0 for v in sizes)):
            raise ShardIndexError('frame_bytes must give one size per frame')
        if labels is not None:
            unknown = [x for x in names if x not in labels]
            if unknown:
                raise ShardIndexError(f'label {unknown[0]!r} is not one of the classes')
    except (ValueError, RecursionError) as e:
        raise ShardIndexError(f'bad sample metadata ({e})') from None
    return meta
