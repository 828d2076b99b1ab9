"""Frames of encoded video files, decoded with PyAV: the same frames the converters write.

Frame ``i`` of a file is the i-th frame of a sequential decode from its start
(``datasets.formats.video_files``). A clip is decoded from the keyframe before it, and every
frame after the seek is checked against the file's index; where a seek cannot be trusted the
file is decoded from its start (learnt once per file).
"""
import array
import bisect
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Set, Tuple, Union

import numpy as np
import torch

from datasets.decode import VideoReadError, assemble
from datasets.formats.video_files import (UNREADABLE, FrameTable, UnreadableVideo, declared_size, frame_table,
                                          open_video, video_stream)
from datasets.frame_sizes import Size
from datasets.planar_clip import PlanarClip, is_planar, pack

MAX_SEEK_MARGIN = 2  # keyframes a seek may learn to aim before the wanted one


class VideoIndex:
    """The frames of a video file (``video_files.frame_table``) and the keyframes a decoder may start at.

    Frame ``i`` is the i-th frame of a sequential decode from the start of the file, the frame
    the converters write as number ``i`` (``image_{i+1:05d}.jpg``). ``seekable`` turns False
    the first time a seek cannot be verified; the file is then decoded from its start.
    """

    def __init__(self, table: FrameTable):
        self.n_frames = len(table.pts)
        self.seek_to = dict(table.seek_points)  # keyframe number -> timestamp that seeks to it
        self.keyframes = sorted(table.seek_points)
        self.seekable = table.distinct  # frames after a seek are known by their (distinct) pts
        # frame numbers by presentation time, in flat arrays: a worker caches thousands of these
        order = sorted(range(self.n_frames), key=table.pts.__getitem__) if table.distinct else []
        self._times = array.array('q', (table.pts[i] for i in order))
        self._frames = array.array('l', order)
        self.margin = 0  # how many keyframes before the wanted one a seek has to aim (learnt)

    def __len__(self) -> int:
        return self.n_frames

    def position(self, pts: Optional[int]) -> Optional[int]:
        """The number of the frame shown at ``pts`` (None: no frame of the index is)."""
        i = bisect.bisect_left(self._times, pts) if pts is not None else len(self._times)
        return self._frames[i] if i < len(self._times) and self._times[i] == pts else None

    @property
    def nbytes(self) -> int:
        """About the memory the index holds (what the loader's cache counts)."""
        return self._times.itemsize * len(self._times) * 2 + 100 * (len(self.seek_to) + 4)

    def keyframe_before(self, frame: int) -> int:
        """The last keyframe at or before ``frame`` that a seek may aim at (0 if none)."""
        k = np.searchsorted(self.keyframes, frame, side='right') - 1
        return self.keyframes[k] if k >= 0 else 0

    def seek_target(self, frame: int) -> Optional[int]:
        """The timestamp to seek to for decoding ``frame`` (None: decode from the start of a fresh open).

        Keyframe 0 is a target like any other: the open file is reused and every frame after the
        seek is verified all the same."""
        k = self._target(frame)
        return self.seek_to[self.keyframes[k]] if k >= 0 else None

    def _target(self, frame: int) -> int:
        if not self.seekable:
            return -1
        return int(np.searchsorted(self.keyframes, frame, side='right')) - 1 - self.margin

    def missed(self, frame: int) -> None:
        """A seek for ``frame`` missed: aim one keyframe earlier from now on, or (after
        ``MAX_SEEK_MARGIN`` times, or when it aimed at the first keyframe, which has none before
        it) never aim at the keyframe that missed again."""
        if self._target(frame) == 0:
            del self.keyframes[0]
        elif self.margin < MAX_SEEK_MARGIN:
            self.margin += 1
        else:
            k = self._target(frame)
            if k >= 0:
                del self.keyframes[k]


def build_video_index(path: Path) -> VideoIndex:
    """Index a video file's frames (``video_files.frame_table``: cached per file)."""
    try:
        return VideoIndex(frame_table(path))
    except UnreadableVideo as e:
        raise VideoReadError(f'{path}: {e}') from e
    except UNREADABLE as e:
        raise VideoReadError(f'{path}: unreadable video ({str(e).splitlines()[0]})') from e


class SeekMissed(Exception):
    """A seek landed after the keyframe it aimed at, or the frames after it are not the index's."""


def frame_to_tensor(frame: 'object') -> torch.Tensor:
    """A decoded frame as RGB C x H x W uint8 (H x W x C in memory)."""
    return torch.from_numpy(frame.to_ndarray(format='rgb24')).permute(2, 0, 1)


class VideoLoader:
    """Frames decoded from a video file with PyAV (0-based display-order indices).

    Frame ``i`` is the i-th frame of a sequential decode (``video_files``), the converters' frame
    ``i``. Seeks to the keyframe before the clip and decodes only up to its last frame, so a clip
    from a short-GOP file (``generate_video_mp4``) costs at most about one GOP of extra decoding.
    Every frame after a seek is verified by its presentation time; a seek that lands elsewhere
    (counted in ``missed_seeks``) makes later seeks in that file aim one keyframe earlier (up to
    ``MAX_SEEK_MARGIN``), then drops the keyframe that missed as a seek target; with no target
    left, or when frames share presentation times, the file is decoded from its start. Each
    lesson is paid once per file and the frames are exact either way.
    The per-video frame indexes are cached in the loader (the worker), up to ``max_cached_bytes``
    (least recently used out first; about 5 KB for a 10-second video), so a worker's memory stays
    flat over an epoch of a Kinetics-sized dataset; a video read again after its index left
    rebuilds it from the stored or cached frame table (``video_files``). With
    ``planar`` a clip of 4:2:0 frames comes back as a ``planar_clip.PlanarClip``, colour-converted
    only after its first crop and resize; clips in other formats come back RGB as always.
    """

    def __init__(self, planar: bool = False, max_cached_bytes: int = 32 << 20, max_open: int = 8):
        self.planar = planar
        self.index_cache: Dict[Path, VideoIndex] = {}  # least recently used first
        self.max_cached_bytes = max_cached_bytes  # bounds a worker's memory over a Kinetics epoch
        self.cached_bytes = 0
        self.open_files: Dict[Path, 'object'] = {}  # opening a container costs ~3 ms: keep a few
        self.max_open = max_open
        self.missed_seeks = 0  # seeks that landed elsewhere than their index promised

    def _container(self, path: Path) -> 'object':
        container = self.open_files.pop(path, None)
        if container is None:
            container = open_video(path)
            try:  # one core per worker: the DataLoader parallelises
                video_stream(container).thread_type = 'NONE'
            except UnreadableVideo:
                container.close()
                raise
            if len(self.open_files) >= self.max_open:
                self.open_files.pop(next(iter(self.open_files))).close()
        self.open_files[path] = container  # most recently used last
        return container

    def _forget(self, path: Path) -> None:
        container = self.open_files.pop(path, None)
        if container is not None:
            container.close()

    def forget(self, path: Path) -> None:
        """Close ``path`` and drop its index (a file about to be removed, or replaced by other content)."""
        self._forget(path)
        idx = self.index_cache.pop(path, None)
        if idx is not None:
            self.cached_bytes -= idx.nbytes

    def __getstate__(self) -> Dict:
        # Open containers cannot cross into DataLoader worker processes; each opens its own.
        return {**self.__dict__, 'open_files': {}}

    def index(self, path: Path) -> VideoIndex:
        """The (cached) frame index of ``path``."""
        idx = self.index_cache.pop(path, None)
        if idx is None:
            idx = build_video_index(path)
            self.cached_bytes += idx.nbytes
            while self.index_cache and self.cached_bytes > self.max_cached_bytes:
                self.cached_bytes -= self.index_cache.pop(next(iter(self.index_cache))).nbytes
        self.index_cache[path] = idx
        return idx

    def _decode(self, path: Path, idx: VideoIndex, wanted: Sequence[int],
                convert: Callable[['object'], torch.Tensor] = frame_to_tensor) -> Dict[int, Optional[torch.Tensor]]:
        frames: Dict[int, Optional[torch.Tensor]] = {i: None for i in wanted}
        valid = sorted(i for i in wanted if 0 <= i < len(idx))
        if not valid:
            return frames
        start = idx.keyframe_before(valid[0])
        try:
            while idx.seek_target(start) is not None:
                try:
                    self._from_keyframe(path, idx, start, set(valid), frames, convert)
                    return frames
                except SeekMissed:
                    idx.missed(start)  # learnt once per file and keyframe
                    self.missed_seeks += 1
            self._from_start(path, set(valid), frames, convert)
        except UNREADABLE:
            self._forget(path)  # frames decoded before the error are kept; the rest count as bad
        return frames

    def _from_start(self, path: Path, need: Set[int], frames: Dict[int, Optional[torch.Tensor]],
                    convert: Callable[['object'], torch.Tensor]) -> None:
        """Decode from the start of a freshly opened file, numbering frames as they come."""
        self._forget(path)  # a seek back to the start is not trusted either (MPEG program streams)
        container = self._container(path)
        last = max(need)
        for pos, frame in enumerate(container.decode(video_stream(container))):
            if pos in need:
                frames[pos] = convert(frame)
            if pos >= last:
                break

    def _from_keyframe(self, path: Path, idx: VideoIndex, start: int, need: Set[int],
                       frames: Dict[int, Optional[torch.Tensor]], convert: Callable[['object'], torch.Tensor]) -> None:
        """Seek to keyframe ``start`` (or before it) and decode, verifying every frame.

        Frames shown before the keyframe (where the seek landed early, and the leading pictures
        of an open GOP) are skipped; then the keyframe must come and every later frame must
        follow its predecessor.
        """
        container = self._container(path)
        stream = video_stream(container)
        container.seek(idx.seek_target(start), stream=stream, backward=True, any_frame=False)
        expected, last = start, max(need)
        for frame in container.decode(stream):
            pos = idx.position(frame.pts)
            if pos is not None and pos < start and expected == start:
                continue
            if pos != expected or (pos == start and not frame.key_frame):
                got = 'a frame not in the index' if pos is None else f'frame {pos}'
                raise SeekMissed(f'seeking to keyframe {start} gave {got} where frame {expected} was due')
            if pos in need:
                frames[pos] = convert(frame)
            if pos >= last:
                return
            expected += 1
        raise SeekMissed(f'decoding from keyframe {start} ended before frame {expected}')

    def __call__(self, path: Path, indices: Sequence[int]) -> Tuple[Union[torch.Tensor, PlanarClip], int]:
        if not path.is_file():
            raise VideoReadError(f'{path}: video file not found')
        idx = self.index(path)
        size = self.video_size(path) if self.planar else None  # packed planes unpack with the declared size
        if size is None:
            frames = self._decode(path, idx, list(dict.fromkeys(indices)))
            return assemble(indices, frames, lambda i: self._decode(path, idx, [i])[i], str(path),
                            lambda: self.video_size(path))
        convert = lambda frame: pack(frame) if is_planar(frame) else frame_to_tensor(frame)  # noqa: E731
        frames = self._decode(path, idx, list(dict.fromkeys(indices)), convert)
        read_one = lambda i: self._decode(path, idx, [i], convert)[i]  # noqa: E731
        got = [f for f in frames.values() if f is not None]
        if got and all(f.shape[0] == 1 for f in got):
            clip, bad = assemble(indices, frames, read_one, str(path), lambda: None)
            if clip.shape[1] == 1:
                return PlanarClip(clip, *size, bad=bad), bad
        # a clip of mixed formats, or none decoded: every frame, and any neighbour read for it, RGB
        rgb = lambda f: f if f is None or f.shape[0] == 3 else PlanarClip(f[None], *size).decode_for()[:, 0]  # noqa: E731
        return assemble(indices, {i: rgb(f) for i, f in frames.items()}, lambda i: rgb(read_one(i)), str(path),
                        lambda: size)

    def video_size(self, path: Path) -> Optional[Size]:
        """The frame size the video's header declares (None if it cannot be read)."""
        try:
            return declared_size(video_stream(self._container(path)))
        except UNREADABLE:
            return None
