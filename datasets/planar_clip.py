"""Clips of 4:2:0 video frames kept as their planes until the first crop-and-resize.

A decoder gives a 4:2:0 frame as a full-size luma plane and two half-size chroma planes.
Converting every whole frame to RGB costs more than decoding it; ``PlanarClip`` keeps the
planes (packed into one single-channel image per frame, ``pack``, half the bytes of RGB) and
its ``crop_resized`` cuts the box from each plane, resizes it (luma and chroma straight to the
output when the box lies on whole chroma samples, else with the box's chroma repeated to
full size first) and converts only the result to RGB (BT.601 limited range, what libswscale
uses for these frames). Any other transform sees the whole clip
converted (``decode_for``). Frames in other formats (full-range MJPEG, 4:4:4, 10-bit) never
get here: the loader converts them to RGB itself, so every clip that leaves it is RGB.
"""
import math
from typing import Tuple

import numpy as np
import torch

import spatial_transforms as st

Box = Tuple[int, int, int, int]

# BT.601 limited range, what libswscale uses by default for YUV -> RGB.
_YUV_TO_RGB = torch.tensor([[1.164383, 0.0, 1.596027],
                            [1.164383, -0.391762, -0.812968],
                            [1.164383, 2.017232, 0.0]])
_YUV_OFFSET = torch.tensor([16.0, 128.0, 128.0])


def yuv_to_rgb(clip: torch.Tensor) -> torch.Tensor:
    """YUV (BT.601, limited range) uint8 C x ... -> RGB uint8 of the same shape."""
    c, rest = clip.shape[0], clip.shape[1:]
    x = clip.reshape(c, -1).float() - _YUV_OFFSET.view(3, 1)
    rgb = torch.mm(_YUV_TO_RGB, x).round_().clamp_(0, 255)
    return rgb.to(torch.uint8).view(c, *rest)


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
    out = np.zeros((h + ch, max(w, 2 * cw)), np.uint8)
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

    def _planes(self, box: Box) -> Tuple[torch.Tensor, torch.Tensor]:
        """The box of the luma (1 x T x h x w) and of the chroma planes (2 x T x ch x cw, half size)."""
        top, left, h, w = box
        frames = self.packed[:, 0]
        ch, cw = math.ceil(self.height / 2), math.ceil(self.width / 2)
        luma = frames[:, top:top + h, left:left + w].unsqueeze(0)
        y0, x0 = top // 2, left // 2
        y1, x1 = min(ch, -(-(top + h) // 2)), min(cw, -(-(left + w) // 2))
        chroma = frames[:, self.height:]
        return luma, torch.stack([chroma[:, y0:y1, x0:x1], chroma[:, y0:y1, cw + x0:cw + x1]])

    def crop_resized(self, box: Box, size: Tuple[int, int]) -> torch.Tensor:
        """uint8 RGB C x T x size: the box of every frame resized to ``size``, colour-converted last.

        A box on whole chroma samples (even corners; validation's whole frames) has its luma and
        chroma planes resized straight to ``size``, the chroma upsampling folded into the resize;
        any other box has its chroma repeated to full size first (a half-sample offset would
        shift the colours).
        """
        top, left, h, w = box
        if top % 2 == 0 and left % 2 == 0 and (h % 2 == 0 or top + h == self.height) and \
                (w % 2 == 0 or left + w == self.width):
            luma, chroma = self._planes(box)
            return yuv_to_rgb(torch.cat([st.resize_clip(luma, size), st.resize_clip(chroma, size)]))
        return yuv_to_rgb(st.resize_clip(self._yuv(box), size))

    def _yuv(self, box: Box) -> torch.Tensor:
        """YUV 4:4:4 C x T x h x w of ``box`` (T x h x w x C in memory, which the uint8 resize reads
        fastest), each chroma sample repeated over its 2 x 2 pixels."""
        luma, chroma = self._planes(box)
        top, left, h, w = box
        up = chroma.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)[..., top % 2:top % 2 + h, left % 2:left % 2 + w]
        return torch.stack([luma[0], up[0], up[1]], dim=-1).permute(3, 0, 1, 2)

    def decode_for(self) -> torch.Tensor:
        """uint8 RGB C x T x H x W: the whole frames."""
        return yuv_to_rgb(self._yuv((0, 0, self.height, self.width)))
