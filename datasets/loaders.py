"""Frame loaders: a video on disk plus frame indices -> a uint8 T x C x H x W tensor.

Three storage formats: JPG frame folders (``image_00001.jpg`` ...), HDF5 files holding a
``video`` dataset of JPEG bytes (``video_u``/``video_v`` for flow), and encoded video files
decoded with PyAV. Each distinct frame is decoded once per clip (loop padding repeats
indices). A frame that is missing or cannot be decoded is replaced by the nearest good frame
of the same video and counted; a video that yields no frame at all raises
``VideoReadError``, which the datasets turn into a dropped, counted sample.
"""
import io
import os
import warnings
from fractions import Fraction
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from datasets.frame_sizes import Size, folder_size, majority_size, sampled_size
from datasets.formats.video_files import (UNREADABLE, UnreadableVideo, frame_packets, frame_rate,
                                          open_video, video_stream)

try:
    from torchvision.io import ImageReadMode, decode_jpeg
except ImportError:  # torchvision dropped its image decoders: PIL does the work
    decode_jpeg = None

# torchvision 0.29 deprecates its image decoders in favour of torchcodec; they remain the
# fastest libjpeg-turbo path available here, and PIL takes over if they disappear.
warnings.filterwarnings('ignore', message='The image decoding and encoding capabilities of TorchVision',
                        category=DeprecationWarning)

IMAGE_TEMPLATE = 'image_{:05d}.jpg'
PROBE_RADIUS = 16  # how far outside the clip to look for a good frame before giving up


class VideoReadError(Exception):
    """The whole video is unusable (missing, unreadable, no decodable frame)."""


def decode_image(data: bytes, mode: str = 'RGB') -> torch.Tensor:
    """JPEG (or any PIL-readable image) bytes -> uint8 C x H x W; greyscale/CMYK become RGB.

    ``mode`` 'L' gives one channel (flow). Raises ValueError for undecodable bytes.
    """
    if not data:
        raise ValueError('empty file')
    if decode_jpeg is not None:
        try:
            buf = torch.frombuffer(bytearray(data), dtype=torch.uint8)
            return decode_jpeg(buf, mode=ImageReadMode.RGB if mode == 'RGB' else ImageReadMode.GRAY)
        except RuntimeError:
            pass  # not a JPEG libjpeg-turbo accepts: let PIL try (PNG, odd JPEGs) or fail
    try:
        with Image.open(io.BytesIO(data)) as img:
            arr = np.asarray(img.convert(mode))
    except Exception as e:
        raise ValueError(f'cannot decode image ({e})') from e
    return torch.from_numpy(arr.copy()).permute(2, 0, 1) if arr.ndim == 3 else torch.from_numpy(arr.copy())[None]


def decode_many(blobs: Dict[int, Optional[bytes]], mode: str = 'RGB') -> Dict[int, Optional[torch.Tensor]]:
    """Decode several images at once (one batched libjpeg-turbo call when all are fine).

    A missing (None) or undecodable image gives None; one bad image does not spoil the rest.
    """
    out: Dict[int, Optional[torch.Tensor]] = {i: None for i in blobs}
    present = {i: b for i, b in blobs.items() if b}
    if decode_jpeg is not None and mode == 'RGB' and len(present) > 1:
        try:
            buffers = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in present.values()]
            out.update(zip(present, decode_jpeg(buffers, mode=ImageReadMode.RGB)))
            return out
        except RuntimeError:
            pass  # some image is broken: decode one by one to find it
    for i, b in present.items():
        try:
            out[i] = decode_image(b, mode)
        except ValueError:
            pass
    return out


def _size(frame: torch.Tensor) -> Size:
    return int(frame.shape[-2]), int(frame.shape[-1])


def assemble(indices: Sequence[int], frames: Dict[int, Optional[torch.Tensor]],
             read_more: Callable[[int], Optional[torch.Tensor]], source: str,
             video_size: Optional[Callable[[], Optional[Size]]] = None) -> Tuple[torch.Tensor, int]:
    """Stack ``frames[i]`` (C x H x W) for ``indices``, filling bad frames with the nearest good one.

    ``frames`` maps each distinct index to its decoded frame or None. A frame whose size is
    not the video's majority size (``video_size()``, asked only when the clip's sizes differ;
    the clip's majority when no frame of the clip has it) is bad too. When no frame of the clip
    is good, ``read_more(i)`` is asked for frames just outside it. Returns the T x C x H x W
    clip and the number of substituted indices.
    """
    good = sorted(i for i, f in frames.items() if f is not None)
    sizes = {_size(frames[i]) for i in good}
    if len(sizes) > 1:
        reference = video_size() if video_size is not None else None
        if reference not in sizes:
            reference = majority_size(_size(frames[i]) for i in good)
        good = [i for i in good if _size(frames[i]) == reference]
    if not good:
        lo, hi = min(indices), max(indices)
        for step in range(1, PROBE_RADIUS + 1):
            for i in (lo - step, hi + step):
                if i >= 0:
                    frame = read_more(i)
                    if frame is not None:
                        frames[i] = frame
                        good = [i]
                        break
            if good:
                break
    if not good:
        raise VideoReadError(f'{source}: no decodable frame among {len(frames)} requested')
    good_arr = np.asarray(good)
    out, bad = [], 0
    for i in indices:
        f = frames.get(i)
        if f is None or f.shape != frames[good[0]].shape:
            f = frames[int(good_arr[np.abs(good_arr - i).argmin()])]
            bad += 1
        out.append(f.permute(1, 2, 0))
    # Decoders give H x W x C memory: stack it as such (a plain copy) and return a
    # T x C x H x W view in channels-last layout, which the uint8 resize kernel reads directly.
    return torch.stack(out).permute(0, 3, 1, 2), bad


class JpgLoader:
    """Frames from a folder of ``image_%05d.jpg`` files (1-based indices, as the original)."""

    def __init__(self, template: str = IMAGE_TEMPLATE):
        self.template = template
        self.sizes: Dict[str, Optional[Size]] = {}  # majority frame size per folder

    def _bytes(self, folder: str, index: int) -> Optional[bytes]:
        try:
            with open(os.path.join(folder, self.template.format(index)), 'rb') as f:
                return f.read()
        except OSError:
            return None

    def _read(self, folder: str, index: int) -> Optional[torch.Tensor]:
        return decode_many({index: self._bytes(folder, index)})[index]

    def __call__(self, path: Path, indices: Sequence[int]) -> Tuple[torch.Tensor, int]:
        if not path.is_dir():
            raise VideoReadError(f'{path}: frame folder not found')
        folder = str(path)
        frames = decode_many({i: self._bytes(folder, i) for i in dict.fromkeys(indices)})
        return assemble(indices, frames, lambda i: self._read(folder, i), folder,
                        lambda: self.video_size(folder))

    def video_size(self, folder: str) -> Optional[Size]:
        """The majority frame size of the folder (``datasets.frame_sizes``), cached."""
        if folder not in self.sizes:
            self.sizes[folder] = folder_size(folder, self.template)
        return self.sizes[folder]


class Hdf5Loader:
    """Frames from an HDF5 file whose ``video`` dataset holds JPEG bytes (0-based indices).

    With ``datasets=('video_u', 'video_v')`` it reads optical flow: one greyscale JPEG per
    direction, stacked into a 2-channel frame.
    """

    def __init__(self, datasets: Sequence[str] = ('video',)):
        self.datasets = tuple(datasets)
        self.mode = 'RGB' if len(self.datasets) == 1 else 'L'

    def _read(self, h5: 'object', index: int, cache: Optional[Dict[Tuple[str, int], bytes]] = None
              ) -> Optional[torch.Tensor]:
        try:
            parts = []
            for name in self.datasets:
                if cache is not None and (name, index) in cache:
                    data = cache[name, index]
                elif 0 <= index < len(h5[name]):
                    data = bytes(h5[name][index])
                else:
                    return None
                parts.append(decode_image(data, self.mode))
            return parts[0] if len(parts) == 1 else torch.cat(parts)
        except (OSError, ValueError, KeyError, RuntimeError):
            return None

    def video_size(self, h5: 'object') -> Optional[Size]:
        """The majority frame size of an open file's first dataset (``datasets.frame_sizes``)."""
        series = h5[self.datasets[0]]

        def read(i: int) -> Optional[bytes]:
            try:
                return bytes(series[i])
            except (OSError, RuntimeError, ValueError):  # a damaged chunk
                return None
        return sampled_size(len(series), read)

    def _prefetch(self, h5: 'object', wanted: Sequence[int]) -> Dict[Tuple[str, int], bytes]:
        """The clip's JPEG bytes in one slice read per dataset (much cheaper than one read per frame)."""
        cache: Dict[Tuple[str, int], bytes] = {}
        for name in self.datasets:
            lo, hi = max(0, min(wanted)), min(len(h5[name]), max(wanted) + 1)
            if hi <= lo or hi - lo > 4 * len(wanted):
                continue  # sparse indices: read them one by one
            try:
                for offset, data in enumerate(h5[name][lo:hi]):
                    cache[name, lo + offset] = bytes(data)
            except (OSError, RuntimeError):
                return {}  # a damaged chunk: fall back to per-frame reads, which isolate it
        return cache

    def __call__(self, path: Path, indices: Sequence[int]) -> Tuple[torch.Tensor, int]:
        import h5py
        try:
            with h5py.File(path, 'r') as h5:
                missing = [n for n in self.datasets if n not in h5]
                if missing:
                    raise VideoReadError(f"{path}: no dataset {', '.join(missing)} in the file")
                wanted = list(dict.fromkeys(indices))
                cache = self._prefetch(h5, wanted)
                frames = {i: self._read(h5, i, cache) for i in wanted}
                return assemble(indices, frames, lambda i: self._read(h5, i), str(path),
                                lambda: self.video_size(h5))
        except VideoReadError:
            raise
        except (OSError, RuntimeError, ValueError) as e:  # missing, truncated or corrupt file
            raise VideoReadError(f'{path}: unreadable hdf5 ({str(e).splitlines()[0]})') from e


class VideoIndex:
    """Presentation timestamps of every frame of a video's first stream, and its keyframes.

    Built once per video by demuxing (no decoding) and cached by ``VideoLoader``.
    """

    def __init__(self, pts: List[int], keyframes: List[int], time_base: Fraction, fps: float):
        self.pts = pts                  # sorted: frame i (0-based, display order) has pts[i]
        self.keyframes = keyframes      # frame numbers of keyframes, sorted
        self.time_base = time_base
        self.fps = fps
        self.position = {p: i for i, p in enumerate(pts)}

    def __len__(self) -> int:
        return len(self.pts)

    def keyframe_before(self, frame: int) -> int:
        """The last keyframe at or before ``frame`` (0 if none)."""
        k = np.searchsorted(self.keyframes, frame, side='right') - 1
        return self.keyframes[k] if k >= 0 else 0


def build_video_index(path: Path) -> VideoIndex:
    """Index a video file's frames by demuxing its packets."""
    try:
        with open_video(path) as container:
            stream = video_stream(container)
            entries = sorted((p.pts, bool(p.is_keyframe)) for p in frame_packets(container, stream))
            rate = frame_rate(stream) or 0
            time_base = stream.time_base
    except UnreadableVideo as e:
        raise VideoReadError(f'{path}: {e}') from e
    except UNREADABLE as e:
        raise VideoReadError(f'{path}: unreadable video ({str(e).splitlines()[0]})') from e
    if not entries:
        raise VideoReadError(f'{path}: no video frames')
    pts = [p for p, _ in entries]
    keyframes = [i for i, (_, key) in enumerate(entries) if key] or [0]
    return VideoIndex(pts, keyframes, time_base, float(rate))


def _plane(plane: 'object') -> np.ndarray:
    """One image plane of a decoded frame as an H x W uint8 array (line padding removed)."""
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]


def frame_to_tensor(frame: 'object', yuv: bool) -> torch.Tensor:
    """A decoded frame as C x H x W uint8 (H x W x C in memory): RGB, or YUV 4:4:4 when ``yuv``.

    YUV skips the full-frame colour conversion, which costs more than decoding: the clip is
    cropped and resized first and ``spatial_transforms.YUVToRGB`` converts only what is left.
    Frames that are not 4:2:0 are converted to RGB here whatever ``yuv`` says.
    """
    if not yuv or frame.format.name != 'yuv420p':
        return torch.from_numpy(frame.to_ndarray(format='rgb24')).permute(2, 0, 1)
    y, u, v = (_plane(p) for p in frame.planes)
    h, w = y.shape
    out = np.empty((h, w, 3), np.uint8)
    out[..., 0] = y
    for channel, chroma in ((1, u), (2, v)):  # each chroma sample covers 2 x 2 pixels
        for dy in (0, 1):
            for dx in (0, 1):
                target = out[dy::2, dx::2, channel]
                target[...] = chroma[:target.shape[0], :target.shape[1]]
    return torch.from_numpy(out).permute(2, 0, 1)


class VideoLoader:
    """Frames decoded from a video file with PyAV (0-based display-order indices).

    Seeks to the keyframe before the clip and decodes only up to its last frame, so a clip
    from a short-GOP file (``generate_video_mp4``) costs at most about one GOP of extra decoding.
    The per-video frame index is cached for the life of the loader (of the worker). With
    ``yuv`` the frames come back as YUV 4:4:4 (see ``frame_to_tensor``).
    """

    def __init__(self, yuv: bool = False, max_cached: int = 100_000, max_open: int = 8):
        self.yuv = yuv
        self.index_cache: Dict[Path, VideoIndex] = {}
        self.max_cached = max_cached
        self.open_files: Dict[Path, 'object'] = {}  # opening a container costs ~3 ms: keep a few
        self.max_open = max_open

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

    def __getstate__(self) -> Dict:
        # Open containers cannot cross into DataLoader worker processes; each opens its own.
        return {**self.__dict__, 'open_files': {}}

    def index(self, path: Path) -> VideoIndex:
        """The (cached) frame index of ``path``."""
        idx = self.index_cache.get(path)
        if idx is None:
            idx = build_video_index(path)
            if len(self.index_cache) >= self.max_cached:
                self.index_cache.pop(next(iter(self.index_cache)))
            self.index_cache[path] = idx
        return idx

    def _decode(self, path: Path, idx: VideoIndex, wanted: Sequence[int]) -> Dict[int, Optional[torch.Tensor]]:
        frames: Dict[int, Optional[torch.Tensor]] = {i: None for i in wanted}
        valid = sorted(i for i in wanted if 0 <= i < len(idx))
        if not valid:
            return frames
        first, last = valid[0], valid[-1]
        need = set(valid)
        try:
            container = self._container(path)
            stream = video_stream(container)
            start = idx.keyframe_before(first)
            container.seek(idx.pts[start], stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                pos = idx.position.get(frame.pts)
                if pos is None:
                    continue
                if pos in need:
                    frames[pos] = frame_to_tensor(frame, self.yuv)
                if pos >= last:
                    break
        except UNREADABLE:
            self._forget(path)  # frames decoded before the error are kept; the rest count as bad
        return frames

    def __call__(self, path: Path, indices: Sequence[int]) -> Tuple[torch.Tensor, int]:
        if not path.is_file():
            raise VideoReadError(f'{path}: video file not found')
        idx = self.index(path)
        frames = self._decode(path, idx, list(dict.fromkeys(indices)))
        read_one = lambda i: self._decode(path, idx, [i])[i]  # noqa: E731
        return assemble(indices, frames, read_one, str(path), lambda: self.video_size(path))

    def video_size(self, path: Path) -> Optional[Size]:
        """The frame size the video's header declares (None if it cannot be read)."""
        try:
            context = video_stream(self._container(path)).codec_context
            return (context.height, context.width) if context.width and context.height else None
        except UNREADABLE:
            return None
