"""Clips of 4:2:0 video frames kept as their planes until the first crop-and-resize.

A decoder gives a 4:2:0 frame as a full-size luma plane and two half-size chroma planes.
Converting every whole frame to RGB costs more than decoding it; ``PlanarClip`` keeps the
planes (packed into one single-channel image per frame, ``pack``, half the bytes of RGB) and
its ``crop_resized`` cuts the box from each plane, resizes luma and chroma straight to the
output and converts only the result to RGB (BT.601 limited range, what libswscale uses for
these frames). Any other transform sees the whole clip
converted (``decode_for``). Frames in other formats (full-range MJPEG, 4:4:4, 10-bit) never
get here: the loader converts them to RGB itself, so every clip that leaves it is RGB.
"""
import math
from typing import List, Tuple

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF

Box = Tuple[int, int, int, int]

# BT.601 limited range, what libswscale uses by default for YUV -> RGB.
_YUV_TO_RGB = torch.tensor([[1.164383, 0.0, 1.596027],
                            [1.164383, -0.391762, -0.812968],
                            [1.164383, 2.017232, 0.0]])
_YUV_OFFSET = torch.tensor([16.0, 128.0, 128.0])


def yuv_to_rgb(clip: torch.Tensor) -> torch.Tensor:
    """YUV (BT.601, limited range) uint8 C x ... -> RGB uint8 of the same shape (contiguous)."""
    return planes_to_rgb(*clip.unbind(0))


def planes_to_rgb(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Y, U and V uint8 planes of one shape (BT.601, limited range) -> RGB uint8 3 x that shape.

    Channel by channel rather than one 3 x 3 matrix product: the product needs the channels
    contiguous, and a resize leaves them interleaved; this reads any layout in one pass."""
    y, u, v = (p.to(torch.float32, copy=True) for p in (y, u, v))  # the arithmetic below is in place
    y.sub_(_YUV_OFFSET[0]).mul_(_YUV_TO_RGB[0, 0].item())
    u.sub_(_YUV_OFFSET[1])
    v.sub_(_YUV_OFFSET[2])
    out = torch.empty((3, *y.shape), dtype=torch.uint8)
    r_v, g_u, g_v, b_u = (_YUV_TO_RGB[i, j].item() for i, j in ((0, 2), (1, 1), (1, 2), (2, 1)))
    out[0] = torch.add(y, v, alpha=r_v).round_().clamp_(0, 255)
    out[1] = torch.add(y, u, alpha=g_u).add_(v, alpha=g_v).round_().clamp_(0, 255)
    out[2] = u.mul_(b_u).add_(y).round_().clamp_(0, 255)
    return out


def resize_frames(frames: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """T x h x w uint8 single-channel frames resized (bilinear, antialiased) to T x ``size``.

    Four (or three) frames go through the resize as the channels of one image: the uint8
    resize is about twice as fast per pixel on 3 or 4 interleaved channels as on one, and
    each channel is resized on its own, so the result is the same."""
    t, h, w = frames.shape
    if (h, w) == tuple(size):
        return frames
    g = next(k for k in (4, 3, 1) if t % k == 0)
    images = frames.unflatten(0, (t // g, g)).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    return TF.resize(images, list(size), antialias=True).flatten(0, 1)


def is_planar(frame: 'object') -> bool:
    """Whether a decoded PyAV frame is 8-bit 4:2:0 with limited range (what ``pack`` takes)."""
    return frame.format.name == 'yuv420p' and getattr(frame, 'color_range', 1) != 2  # 2: full (JPEG) range


def _plane(plane: 'object') -> np.ndarray:
    """One image plane of a decoded frame as an H x W uint8 array (line padding removed)."""
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]


def pack(frame: 'object') -> torch.Tensor:
    """A 4:2:0 frame as 1 x (H + ceil(H/2)) x max(W, 2 ceil(W/2)) uint8: luma above, U and V side by side below."""
    y, u, v = (_plane(p) for p in frame.planes)
    (h, w), (ch, cw) = y.shape, u.shape
    out = np.empty((h + ch, max(w, 2 * cw)), np.uint8)
    out[:h, w:] = 0  # an odd width leaves one column beside the luma
    out[:h, :w] = y
    out[h:, :cw] = u
    out[h:, cw:2 * cw] = v
    return torch.from_numpy(out)[None]


class PlanarClip:
    """T packed 4:2:0 frames (``pack``) of a ``height`` x ``width`` video, RGB once cropped and resized."""

    def __init__(self, packed: torch.Tensor, height: int, width: int, bad: int = 0):
        self.packed = packed  # T x 1 x H' x W'
        self.height, self.width = height, width
        self.bad = bad

    @property
    def shape(self) -> Tuple[int, int, int, int]:
        """C x T x H x W of the RGB clip."""
        return 3, self.packed.shape[0], self.height, self.width

    def select(self, positions: List[int]) -> 'PlanarClip':
        """The clip of the frames at ``positions`` (repeats allowed): the packed planes are indexed, not converted."""
        return PlanarClip(self.packed[positions], self.height, self.width, self.bad)

    def _planes(self, box: Box) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """T x h x w views of the box's luma, and T x ch x cw views of the chroma samples that cover it."""
        top, left, h, w = box
        frames = self.packed[:, 0]
        cw = math.ceil(self.width / 2)
        y0, x0 = top // 2, left // 2
        y1, x1 = min(math.ceil(self.height / 2), -(-(top + h) // 2)), min(cw, -(-(left + w) // 2))
        chroma = frames[:, self.height + y0:self.height + y1]
        return frames[:, top:top + h, left:left + w], chroma[..., x0:x1], chroma[..., cw + x0:cw + x1]

    def crop_resized(self, box: Box, size: Tuple[int, int]) -> torch.Tensor:
        """uint8 RGB C x T x size: the box of every frame resized to ``size``, colour-converted last.

        A box on whole chroma samples (even corners; validation's whole frames) has its luma and
        chroma planes resized straight to ``size``, the chroma upsampling folded into the resize;
        any other box has its chroma repeated to full size first (a half-sample offset would
        shift the colours).
        """
        luma, u, v = self._planes(box)
        top, left, h, w = box
        if top % 2 or left % 2 or (h % 2 and top + h != self.height) or (w % 2 and left + w != self.width):
            u, v = self._upsampled(u, box), self._upsampled(v, box)
        return planes_to_rgb(*(resize_frames(p, size) for p in (luma, u, v)))

    @staticmethod
    def _upsampled(chroma: torch.Tensor, box: Box) -> torch.Tensor:
        """The box's T x h x w of chroma samples (``_planes``), each repeated over its 2 x 2 pixels."""
        top, left, h, w = box
        t, ch, cw = chroma.shape
        up = chroma[:, :, None, :, None].expand(t, ch, 2, cw, 2).reshape(t, 2 * ch, 2 * cw)  # one copy
        return up[:, top % 2:top % 2 + h, left % 2:left % 2 + w]

    def decode_for(self) -> torch.Tensor:
        """uint8 RGB C x T x H x W: the whole frames, each chroma sample repeated over its 2 x 2 pixels."""
        box = (0, 0, self.height, self.width)
        luma, u, v = self._planes(box)
        return planes_to_rgb(luma, self._upsampled(u, box), self._upsampled(v, box))
