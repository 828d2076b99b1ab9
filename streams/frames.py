"""A video's frames one at a time with their times: the decode of ``datasets.formats.video_files``' policy.

Frame ``i`` is the i-th frame of a sequential decode from the start (as every reader of the
framework counts them), up to the first decoding error, which ends the stream and is kept in
``warning``. Times are seconds from the first frame: its presentation time where the stream
has one (a variable frame rate stays exact), else the previous frame's plus one frame.
"""
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import torch

from datasets.formats.live_sources import open_stream
from datasets.formats.video_files import SequentialDecode, frame_rate, open_video, video_stream
from datasets.planar_clip import PlanarClip, is_planar, pack
from datasets.video_loader import frame_to_tensor

DEFAULT_FPS = 25.0  # a stream that declares no rate


@dataclass
class Frame:
    """One decoded frame: its index, its time in seconds from the first frame and the frame as a 1-frame clip."""
    index: int
    time: float
    clip: Union[PlanarClip, torch.Tensor]  # a 1-frame PlanarClip (4:2:0 kept packed) or RGB C x 1 x H x W


def as_clip(frame: Any) -> Union[PlanarClip, torch.Tensor]:
    """A PyAV frame as the video loader gives it: 4:2:0 packed (``PlanarClip``) or RGB C x 1 x H x W."""
    if is_planar(frame):
        return PlanarClip(pack(frame)[None], frame.height, frame.width)
    return frame_to_tensor(frame)[:, None]


class FrameStream:
    """Iterate once over the frames of ``source``; ``fps`` is known once iteration has begun, ``warning`` after it.

    A file is opened as every reader opens one (``open_video``); with ``live`` any source
    ``open_stream`` takes (standard input, a URL, a capture device, a pipe).
    """

    def __init__(self, source: Union[str, Path], live: bool = False, timeout: float = 10.0):
        self.source, self.live, self.timeout = source, live, timeout
        self.fps = DEFAULT_FPS
        self.count = 0
        self.warning = ''
        self.opened = False  # set once the source is open: an error before it is the source's, not the stream's

    def __iter__(self) -> Iterator[Frame]:
        opened = open_stream(str(self.source), self.timeout) if self.live else open_video(self.source)
        self.opened = True
        with opened as container:
            stream = video_stream(container)
            rate: Optional[Fraction] = frame_rate(stream)
            self.fps = float(rate) if rate else DEFAULT_FPS
            decode = SequentialDecode(container, stream)
            first: Optional[float] = None
            time = -1.0 / self.fps
            for frame in decode:
                if frame.pts is not None and frame.time_base is not None:
                    at = float(frame.pts * frame.time_base)
                    first = at if first is None else first
                    time = max(at - first, time + 1e-6)  # never back in time (reordered or repeated stamps)
                else:
                    time += 1.0 / self.fps
                yield Frame(self.count, time, as_clip(frame))
                self.count += 1
            if decode.error is not None:  # what ended the stream early
                e = decode.error
                self.warning = f'decoding stopped after {self.count} frames: {type(e).__name__}: {e}'
