"""Frame loaders: a video on disk plus frame indices -> a uint8 T x C x H x W tensor.

Three storage formats: JPG frame folders (``image_00001.jpg`` ...), HDF5 files holding a
``video`` dataset of JPEG bytes (``video_u``/``video_v`` for flow), and encoded video files
decoded with PyAV (``datasets.video_loader``, re-exported here). Each distinct frame is decoded
once per clip (loop padding repeats indices; ``datasets.decode``). A frame that is missing or cannot be decoded is replaced by the nearest good frame
of the same video and counted; a video that yields no frame at all raises
``VideoReadError``, which the datasets turn into a dropped, counted sample.
"""
import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch

from datasets.decode import VideoReadError, assemble, decode_image, decode_many
from datasets.encoded_clip import EncodedClip
from datasets.formats.video_layout import IMAGE_TEMPLATE
from datasets.frame_sizes import Size, folder_size, sampled_size
from datasets.video_loader import VideoLoader  # noqa: F401  (the third loader, importable beside the others)


def encoded(blobs: Dict[int, Optional[bytes]], indices: Sequence[int], source: str,
            read_more: Callable[[int], Optional[bytes]], video_size: Callable[[], Optional[Size]]
            ) -> Optional[Tuple[EncodedClip, int]]:
    """``(EncodedClip, 0)`` for a JPEG clip to decode at its crop's scale, or None (decode now)."""
    clip = EncodedClip.of(blobs, indices, source, read_more, video_size)
    return None if clip is None else (clip, 0)


def jpeg_clip(blobs: Dict[int, Optional[bytes]], indices: Sequence[int], source: str,
              read_more: Callable[[int], Optional[bytes]], video_size: Callable[[], Optional[Size]],
              scaled: bool) -> Tuple[Any, int]:
    """A clip of one file's JPEG frames (``blobs``: index -> bytes or None): encoded, to decode at its crop's scale
    (``scaled``), else decoded now; a missing or bad frame is replaced by its nearest good one (``read_more`` reads
    further frames) and counted."""
    lazy = scaled and encoded(blobs, indices, source, read_more, video_size)
    if lazy:
        return lazy
    return assemble(indices, decode_many(blobs), lambda i: decode_many({i: read_more(i)})[i], source, video_size)


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

    def __call__(self, path: Path, indices: Sequence[int]) -> Tuple[torch.Tensor, int]:
        if not path.is_dir():
            raise VideoReadError(f'{path}: frame folder not found')
        folder = str(path)
        blobs = {i: self._bytes(folder, i) for i in dict.fromkeys(indices)}
        return jpeg_clip(blobs, indices, folder, lambda i: self._bytes(folder, i), lambda: self.video_size(folder),
                         self.scaled)

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
