"""JPEG clips decoded at the scale their crop needs: the DCT-domain scaling of libjpeg-turbo.

libjpeg-turbo can decode a JPEG at 1/2, 1/4 or 1/8 of its size for much less than a full
decode and a resize. ``EncodedClip`` holds a clip's JPEG bytes until the first crop-and-resize
(``spatial_transforms``: ``Resize``, ``RandomResizedCrop``, ``MultiScaleCornerCrop``) says
which box it keeps and what size it makes of it; the clip is then decoded at the smallest of
those scales at which the box still covers the output (``reduction``) and the box is cut
from the smaller frames. Only power-of-two scales are used: libjpeg-turbo's 3/4, 5/8, ...
take longer than a full decode (measured: docs/benchmarks.md). Any other transform sees the clip
decoded at full size first (``decoded``).

Frames that simplejpeg cannot decode (PNG, CMYK, a missing wheel) fall back to
``loaders.decode_image`` at full size, resized to the clip's scale; bad frames are replaced
as ``loaders.assemble`` does, and counted in ``bad``.
"""
import math
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from datasets.decode import assemble, decode_image
from datasets.frame_sizes import Size, majority_size
from spatial_transforms import resize_clip

try:
    import simplejpeg
except ImportError:  # scaled decoding needs it; without it every clip is decoded at full size
    simplejpeg = None

Box = Tuple[int, int, int, int]  # top, left, height, width in full-size pixels
MAX_REDUCTION = 8
MAX_CLIP_BYTES = 1 << 30  # one buffer for a clip's frames up to this size; larger clips frame by frame


def available() -> bool:
    """Whether scaled JPEG decoding can be used (the simplejpeg wheel is installed)."""
    return simplejpeg is not None


def header_size(data: Optional[bytes]) -> Optional[Size]:
    """(height, width) of a JPEG from its header; None for a missing or non-JPEG image."""
    if not data or simplejpeg is None:
        return None
    try:
        height, width = simplejpeg.decode_jpeg_header(data)[:2]
    except ValueError:
        return None
    return int(height), int(width)


def reduction(box: Optional[Box], out: Optional[Tuple[int, int]], size: Size) -> int:
    """The largest power-of-two factor (<= 8) by which ``box`` of a ``size`` frame still covers ``out``."""
    if out is None:
        return 1
    height, width = (size if box is None else box[2:])
    d = 1
    while d < MAX_REDUCTION and height / (2 * d) >= out[0] and width / (2 * d) >= out[1]:
        d *= 2
    return d


def scaled_size(size: Size, d: int) -> Size:
    """The size libjpeg-turbo gives a ``size`` image decoded at 1/d."""
    return math.ceil(size[0] / d), math.ceil(size[1] / d)


def decode_scaled(data: Optional[bytes], d: int, size: Optional[Size]) -> Optional[torch.Tensor]:
    """Image bytes -> uint8 C x H x W at 1/d scale (H x W x C memory); None when undecodable.

    ``size`` is the JPEG header's (``header_size``; None: not a JPEG libjpeg-turbo reads). A frame
    of another size than its clip's stays another size (``assemble`` replaces it, as at full size).
    """
    if not data:
        return None
    if size is not None:
        height, width = scaled_size(size, d)  # libjpeg-turbo picks the smallest scale at least this big: 1/d
        try:
            array = simplejpeg.decode_jpeg(data, colorspace='RGB', min_height=height, min_width=width)
            return torch.from_numpy(array).permute(2, 0, 1)
        except ValueError:
            pass  # not a JPEG libjpeg-turbo takes (PNG, CMYK, damaged): the slow path decides
    try:
        frame = decode_image(data)
    except ValueError:
        return None
    if d == 1:
        return frame
    return resize_clip(frame.unsqueeze(1), scaled_size((frame.shape[1], frame.shape[2]), d)).squeeze(1)


class EncodedClip:
    """The JPEG bytes of a clip's frames and how to read more; decoded by ``decode_for``.

    ``blobs`` maps each distinct frame index to its bytes (None: missing); ``indices`` is the
    clip's frame order (repeats allowed); ``read_more(i)`` gives the bytes of a frame outside
    the clip (``assemble`` asks when none of the clip decodes); ``video_size()`` the video's
    majority frame size. ``size`` is the majority size of the clip's JPEG headers.
    """

    def __init__(self, blobs: Dict[int, Optional[bytes]], indices: Sequence[int], source: str,
                 read_more: Callable[[int], Optional[bytes]],
                 video_size: Callable[[], Optional[Size]], sizes: Dict[int, Optional[Size]], size: Size):
        self.blobs = blobs
        self.sizes = sizes  # each frame's header size (None: not a JPEG libjpeg-turbo reads)
        self.indices = list(indices)
        self.source = source
        self.read_more = read_more
        self.video_size = video_size
        self.size = size
        self.bad = 0
        self.factor = 1  # the reduction of the last decode
        self.shared: Dict[int, Tuple[List[int], torch.Tensor]] = {}  # reduction -> (positions, their frames at it)

    @classmethod
    def of(cls, blobs: Dict[int, Optional[bytes]], indices: Sequence[int], source: str,
           read_more: Callable[[int], Optional[bytes]],
           video_size: Callable[[], Optional[Size]]) -> Optional['EncodedClip']:
        """An encoded clip, or None when scaled decoding is unavailable or no header can be read."""
        if simplejpeg is None:
            return None
        sizes = {i: header_size(b) for i, b in blobs.items()}
        size = majority_size(s for s in sizes.values() if s is not None)
        return None if size is None else cls(blobs, indices, source, read_more, video_size, sizes, size)

    def reference_size(self) -> Size:
        """The size a frame must have not to be replaced, as ``loaders.assemble`` picks it: the
        video's majority size when the clip's frames differ and it is one of theirs, else the clip's."""
        sizes = {s for s in self.sizes.values() if s is not None}
        if len(sizes) > 1:
            full = self.video_size()
            if full in sizes:
                return full
        return self.size

    @property
    def shape(self) -> Tuple[int, int, int, int]:
        """C x T x H x W of the clip decoded at full size."""
        return 3, len(self.indices), self.size[0], self.size[1]

    def crop_resized(self, box: Box, size: Tuple[int, int]) -> torch.Tensor:
        """uint8 C x T x ``size``: ``box`` decoded at the smallest scale where it covers ``size``, resized."""
        return resize_clip(self.decode_for(box, size), size)

    def decode_for(self, box: Optional[Box] = None, out: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """uint8 C x T x h x w: ``box`` (None: the whole frame) cut from frames decoded at the
        smallest scale where it still covers ``out`` (None: full size)."""
        d = reduction(box, out, self.size)
        self.factor = d
        return cut(self.frames_at(d), box, d)

    def frames_at(self, d: int) -> torch.Tensor:
        """All of the clip's frames decoded at 1/d (C x T x h x w)."""
        clip = self._straight(d)
        return self._assembled(d) if clip is None else clip

    def select(self, positions: Sequence[int]) -> 'SharedFrames':
        """A clip of the frames at ``positions`` that shares this clip's decodes with the others selected from it."""
        return SharedFrames(self, positions)

    def part(self, positions: Sequence[int]) -> 'EncodedClip':
        """The clip of the frames at ``positions`` (of ``indices``), reading and sized as this one."""
        indices = [self.indices[p] for p in positions]
        return EncodedClip({i: self.blobs[i] for i in indices}, indices, self.source, self.read_more,
                           self.video_size, {i: self.sizes[i] for i in indices}, self.size)

    def decode_shared(self, wants: Sequence[Tuple[Sequence[int], int]]) -> None:
        """For the clips to be selected (each its positions and the reduction its crop needs): every frame decoded
        once, at the finest reduction among the clips that hold it, so no clip decodes finer than it alone would."""
        finest: Dict[int, int] = {}
        for positions, d in wants:
            for p in positions:
                finest[p] = min(d, finest.get(p, d))
        self.shared, self.bad = {}, 0
        for d in sorted(set(finest.values())):
            group = sorted(p for p, e in finest.items() if e == d)
            part = self.part(group)
            self.shared[d] = (group, part.frames_at(d))
            self.bad += part.bad

    def _straight(self, d: int) -> Optional[torch.Tensor]:
        """The common case in one buffer, no copy: distinct frames that all decode to the clip's size."""
        if simplejpeg is None or len(self.blobs) != len(self.indices):
            return None
        height, width = scaled_size(self.size, d)
        if len(self.indices) * height * width * 3 > MAX_CLIP_BYTES:
            return None  # a header claiming a huge frame: decode frame by frame, where a bad one is only that
        buffer = np.empty((len(self.indices), height, width, 3), np.uint8)
        try:
            for k, i in enumerate(self.indices):
                if self.sizes[i] != self.size:  # missing, not a JPEG, or another size: assemble decides
                    return None
                simplejpeg.decode_jpeg(self.blobs[i], colorspace='RGB', min_height=height, min_width=width,
                                       buffer=buffer[k])
        except ValueError:
            return None
        self.bad = 0
        return torch.from_numpy(buffer).permute(3, 0, 1, 2)  # T x H x W x C memory seen as C x T x H x W

    def _read_more(self, i: int, d: int) -> Optional[torch.Tensor]:
        """Frame ``i``, outside the clip, at 1/d scale."""
        data = self.read_more(i)
        return decode_scaled(data, d, header_size(data))

    def _assembled(self, d: int) -> torch.Tensor:
        """Frame by frame, bad frames replaced and counted by ``loaders.assemble``."""
        frames = {i: decode_scaled(b, d, self.sizes[i]) for i, b in self.blobs.items()}

        def video_size() -> Optional[Size]:
            full = self.video_size()
            return None if full is None else scaled_size(full, d)
        clip, self.bad = assemble(self.indices, frames, lambda i: self._read_more(i, d),
                                  self.source, video_size)
        return clip.transpose(0, 1)  # T x C x H x W -> C x T x H x W


def cut(clip: torch.Tensor, box: Optional[Box], d: int) -> torch.Tensor:
    """``box`` (full-size pixels; None: all) of a clip decoded at 1/d."""
    if box is None:
        return clip
    top, left, height, width = box
    y0, x0 = round(top / d), round(left / d)
    y1 = min(clip.shape[-2], max(y0 + 1, round((top + height) / d)))
    x1 = min(clip.shape[-1], max(x0 + 1, round((left + width) / d)))
    return clip[..., y0:y1, x0:x1]


def frames_of(clip: torch.Tensor, picks: Sequence[int]) -> torch.Tensor:
    """The frames ``picks`` of a C x T x H x W clip: a view where they are evenly spaced (a clip's usual case),
    else a copy."""
    step = picks[1] - picks[0] if len(picks) > 1 else 1
    if step > 0 and all(b - a == step for a, b in zip(picks, picks[1:])):
        return clip[:, picks[0]:picks[-1] + 1:step]
    return clip[:, list(picks)]


class SharedFrames:
    """Some frames of an ``EncodedClip`` (``--repeat_aug``: one clip of several cut from one read of a video).

    Each frame is decoded once for all the clips selected from the same ``EncodedClip``, at the
    finest scale among the crops of the clips that hold it (``crop_scales``, asked first, then
    ``EncodedClip.decode_shared``); a crop cuts its box from each frame at the scale it was decoded
    at and resizes it, the frames of one scale together.
    """

    def __init__(self, source: EncodedClip, positions: Sequence[int]):
        self.source = source
        self.positions = list(positions)

    @property
    def shape(self) -> Tuple[int, int, int, int]:
        """C x T x H x W of the frames decoded at full size."""
        return 3, len(self.positions), self.source.size[0], self.source.size[1]

    @property
    def bad(self) -> int:
        """Frames of the shared read replaced by a neighbour."""
        return self.source.bad

    def crop_resized(self, box: Box, size: Tuple[int, int]) -> torch.Tensor:
        """As ``EncodedClip.crop_resized``, from the shared decodes."""
        parts = self._parts(reduction(box, size, self.source.size))
        if parts is None:  # a transform that was not asked first: decoded again
            return resize_clip(self.decode_for(box, size), size)
        clips = [(slots, resize_clip(frames_of(cut(frames, box, d), picks), size)) for d, frames, slots, picks in parts]
        if len(clips) == 1:
            return clips[0][1]
        first = clips[0][1]
        out = first.new_empty((first.shape[0], len(self.positions), *first.shape[2:]))
        for slots, clip in clips:
            out[:, slots] = clip
        return out

    def decode_for(self, box: Optional[Box] = None, out: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """As ``EncodedClip.decode_for``: cut from the shared decode when it holds all of this clip's frames at
        one scale that covers ``out``; else this clip's frames decoded again (a transform that was not asked first)."""
        want = reduction(box, out, self.source.size)
        parts = self._parts(want)
        if parts is not None and len(parts) == 1:
            d, frames, _, picks = parts[0]
            return frames_of(cut(frames, box, d), picks)
        d = min([want] + [p[0] for p in parts or []])
        return cut(self.source.part(self.positions).frames_at(d), box, d)

    def _parts(self, want: int) -> Optional[List[Tuple[int, torch.Tensor, List[int], List[int]]]]:
        """(reduction, the shared frames at it, the slots of this clip they fill, the frames that fill them) per
        scale this clip's frames were decoded at; None when a frame is missing or coarser than ``want``."""
        where = {p: (d, k) for d, (group, _) in self.source.shared.items() for k, p in enumerate(group)}
        if any(p not in where or where[p][0] > want for p in self.positions):
            return None
        parts = []
        for d, (_, frames) in sorted(self.source.shared.items()):
            slots = [t for t, p in enumerate(self.positions) if where[p][0] == d]
            if slots:
                parts.append((d, frames, slots, [where[self.positions[t]][1] for t in slots]))
        return parts


class _Probed(Exception):
    """Raised by ``ScaleProbe`` once a transform has asked for its crop."""


class ScaleProbe:
    """Stands in for an ``EncodedClip`` to learn which scale a spatial transform's crop would decode at."""

    def __init__(self, clip: EncodedClip, frames: int):
        self.size, self.frames = clip.size, frames

    @property
    def shape(self) -> Tuple[int, int, int, int]:
        """C x T x H x W at full size, as the clip's."""
        return 3, self.frames, self.size[0], self.size[1]

    def crop_resized(self, box: Box, size: Tuple[int, int]) -> torch.Tensor:
        """Stop the transform: the crop's scale is known."""
        raise _Probed(reduction(box, size, self.size))

    def decode_for(self, box: Optional[Box] = None, out: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """Stop the transform: it wants the frames at this scale."""
        raise _Probed(reduction(box, out, self.size))


def crop_scales(clip: EncodedClip, frames: int, transform: Callable, rngs: Sequence[Any]) -> List[int]:
    """The reduction that each clip ``transform`` makes with ``rngs`` would decode at (their generators left as
    they were), so that each frame is decoded once for them all (``EncodedClip.decode_shared``)."""
    from temporal_transforms import apply
    scales = []
    for rng in rngs:
        state = None if rng is None else rng.getstate()
        try:
            apply(transform, ScaleProbe(clip, frames), rng)
            scales.append(1)  # a transform that never crops: full size
        except _Probed as probed:
            scales.append(probed.args[0])
        finally:
            if state is not None:
                rng.setstate(state)
    return scales


def decoded(clip: object) -> torch.Tensor:
    """A tensor clip as it is; a clip still encoded (``EncodedClip``, ``PlanarClip``) made a full-size RGB tensor."""
    return clip.decode_for() if hasattr(clip, 'decode_for') else clip  # type: ignore[return-value]
