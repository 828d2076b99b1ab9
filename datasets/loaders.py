"""Frame loaders: a video on disk plus frame indices -> a uint8 T x C x H x W tensor.

Three storage formats: JPG frame folders (``image_00001.jpg`` ...), HDF5 files holding a
``video`` dataset of JPEG bytes (``video_u``/``video_v`` for flow), and encoded video files
decoded with PyAV (``datasets.video_loader``, re-exported here). Each distinct frame is decoded once per clip (loop padding repeats
indices). A frame that is missing or cannot be decoded is replaced by the nearest good frame
of the same video and counted; a video that yields no frame at all raises
``VideoReadError``, which the datasets turn into a dropped, counted sample.
"""
import io
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image

from datasets.frame_sizes import Size, folder_size, majority_size, sampled_size

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


def encoded(blobs: Dict[int, Optional[bytes]], indices: Sequence[int], source: str,
            read_more: Callable[[int], Optional[bytes]], video_size: Callable[[], Optional[Size]]
            ) -> Optional[Tuple['object', int]]:
    """``(EncodedClip, 0)`` for a JPEG clip to decode at its crop's scale, or None (decode now)."""
    from datasets.encoded_clip import EncodedClip
    clip = EncodedClip.of(blobs, indices, source, read_more, video_size)
    return None if clip is None else (clip, 0)


class JpgLoader:
    """Frames from a folder of ``image_%05d.jpg`` files (1-based indices, as the original).

    With ``scaled`` a clip comes back as a ``datasets.encoded_clip.EncodedClip`` (C x T x H x W
    once decoded, at the scale its first crop-and-resize needs, bad frames counted in ``bad``).
    """

    def __init__(self, template: str = IMAGE_TEMPLATE, scaled: bool = False):
        self.template = template
        self.scaled = scaled
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
        blobs = {i: self._bytes(folder, i) for i in dict.fromkeys(indices)}
        lazy = self.scaled and encoded(blobs, indices, folder, lambda i: self._bytes(folder, i),
                                       lambda: self.video_size(folder))
        if lazy:
            return lazy  # type: ignore[return-value]
        frames = decode_many(blobs)
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
    direction, stacked into a 2-channel frame. ``scaled`` (RGB only) as ``JpgLoader``'s.
    """

    def __init__(self, datasets: Sequence[str] = ('video',), scaled: bool = False):
        self.datasets = tuple(datasets)
        self.mode = 'RGB' if len(self.datasets) == 1 else 'L'
        self.scaled = scaled and self.mode == 'RGB'

    def _read(self, h5: 'object', index: int, cache: Optional[Dict[Tuple[str, int], bytes]] = None
              ) -> Optional[torch.Tensor]:
        try:
            parts = []
            for name in self.datasets:
                data = self._bytes(h5, index, cache, name)
                if data is None:
                    return None
                parts.append(decode_image(data, self.mode))
            return parts[0] if len(parts) == 1 else torch.cat(parts)
        except (ValueError, RuntimeError):
            return None

    def _bytes(self, h5: 'object', index: int, cache: Optional[Dict[Tuple[str, int], bytes]] = None,
               name: Optional[str] = None) -> Optional[bytes]:
        """One frame's JPEG bytes from dataset ``name`` (default: the first), None if absent or unreadable."""
        name = name or self.datasets[0]
        if cache is not None and (name, index) in cache:
            return cache[name, index]
        try:
            return bytes(h5[name][index]) if 0 <= index < len(h5[name]) else None
        except (OSError, RuntimeError, ValueError, KeyError):  # a damaged chunk
            return None

    @staticmethod
    def _reopened(path: Path, read: Callable[['object'], Any]) -> Any:
        """``read(h5)`` on the file opened again (for an encoded clip, whose file is closed); None if it fails."""
        import h5py
        try:
            with h5py.File(path, 'r') as h5:
                return read(h5)
        except (OSError, RuntimeError, ValueError):
            return None

    def video_size(self, h5: 'object') -> Optional[Size]:
        """The majority frame size of an open file's first dataset (``datasets.frame_sizes``)."""
        return sampled_size(len(h5[self.datasets[0]]), lambda i: self._bytes(h5, i))

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

    def frames(self, h5: 'object', wanted: Sequence[int],
               cache: Optional[Dict[Tuple[str, int], bytes]] = None) -> Dict[int, Optional[torch.Tensor]]:
        """Each wanted frame of an open file decoded (C x H x W), None where it cannot be read."""
        cache = self._prefetch(h5, wanted) if cache is None else cache
        return {i: self._read(h5, i, cache) for i in wanted}

    def __call__(self, path: Path, indices: Sequence[int]) -> Tuple[torch.Tensor, int]:
        import h5py
        try:
            with h5py.File(path, 'r') as h5:
                missing = [n for n in self.datasets if n not in h5]
                if missing:
                    raise VideoReadError(f"{path}: no dataset {', '.join(missing)} in the file")
                wanted = list(dict.fromkeys(indices))
                cache = self._prefetch(h5, wanted)
                lazy = self.scaled and encoded({i: self._bytes(h5, i, cache) for i in wanted}, indices, str(path),
                                               lambda i: self._reopened(path, lambda h5: self._bytes(h5, i)),
                                               lambda: self._reopened(path, self.video_size))
                if lazy:
                    return lazy  # type: ignore[return-value]
                return assemble(indices, self.frames(h5, wanted, cache), lambda i: self._read(h5, i), str(path),
                                lambda: self.video_size(h5))
        except VideoReadError:
            raise
        except (OSError, RuntimeError, ValueError) as e:  # missing, truncated or corrupt file
            raise VideoReadError(f'{path}: unreadable hdf5 ({str(e).splitlines()[0]})') from e


VIDEO_NAMES = frozenset({'SeekMissed', 'VideoIndex', 'VideoLoader', 'build_video_index', 'frame_to_tensor'})


def __getattr__(name: str) -> object:
    """The video-file reader's names, from ``datasets.video_loader`` (which uses ``assemble``)."""
    if name in VIDEO_NAMES:
        from datasets import video_loader
        return getattr(video_loader, name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
