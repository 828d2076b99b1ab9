"""Decoding frames and stacking them into a clip: the step every loader shares.

``decode_image``/``decode_many`` turn JPEG (or other image) bytes into uint8 C x H x W
tensors; ``assemble`` stacks a clip's frames, filling a frame that is missing, undecodable
or of another size with the nearest good one, and counting it; ``VideoReadError`` is a video
that yields no frame at all, which the datasets turn into a dropped, counted sample.
"""
import io
import warnings
from typing import Callable, Dict, Hashable, Mapping, Optional, Sequence, Tuple, TypeVar

import numpy as np
import torch
from PIL import Image

from datasets.frame_sizes import Size, majority_size

try:
    from torchvision.io import ImageReadMode, decode_jpeg
except ImportError:  # torchvision dropped its image decoders: PIL does the work
    decode_jpeg = None

# torchvision 0.29 deprecates its image decoders in favour of torchcodec; they remain the
# fastest libjpeg-turbo path available here, and PIL takes over if they disappear.
warnings.filterwarnings('ignore', message='The image decoding and encoding capabilities of TorchVision',
                        category=DeprecationWarning)

K = TypeVar('K', bound=Hashable)  # what a batch of images is keyed by (a frame index, (sample, index))
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


def decode_many(blobs: Mapping[K, Optional[bytes]], mode: str = 'RGB',
                device: Optional[torch.device] = None) -> Dict[K, Optional[torch.Tensor]]:
    """Decode several images at once (one batched libjpeg-turbo or nvJPEG call when all are fine).

    A missing (None) or undecodable image gives None; one bad image does not spoil the rest.
    On a ``device`` other than the CPU (``--decode_device``) the frames are decoded there; an
    image the device decoder refuses is decoded alone there, then by the CPU path and moved.
    """
    out: Dict[K, Optional[torch.Tensor]] = {i: None for i in blobs}
    present = {i: b for i, b in blobs.items() if b}
    on_device = device is not None and torch.device(device).type != 'cpu'
    where = {'device': device} if on_device else {}
    if decode_jpeg is not None and mode == 'RGB' and (len(present) > 1 or on_device and present):
        try:
            buffers = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in present.values()]
            out.update(zip(present, decode_jpeg(buffers, mode=ImageReadMode.RGB, **where)))
            return out
        except RuntimeError:
            pass  # some image is broken: decode one by one to find it
    for i, b in present.items():
        if on_device and decode_jpeg is not None and mode == 'RGB':
            try:
                out[i] = decode_jpeg(torch.frombuffer(bytearray(b), dtype=torch.uint8), mode=ImageReadMode.RGB, **where)
                continue
            except RuntimeError:
                pass
        try:
            frame = decode_image(b, mode)
        except ValueError:
            continue
        out[i] = frame.to(device) if on_device else frame
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
