"""The checkpoint's clips over a stream of frames, made as the frames arrive.

``ClipWindows`` gives the clips ``preprocessing.inference_transforms``' sliding window gives
for the whole video (every ``sample_t_stride``-th frame; a window of ``sample_duration`` of
them every ``stride`` frames; the first window that runs past the end loop-padded and the
last), without knowing the length in advance: each frame is cropped and resized by the
checkpoint's spatial transform when it arrives, and only the frames of the oldest window not
yet complete are kept (``peak`` counts them: never more than one clip's frames).
"""
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Deque, List, Optional, Tuple

import torch

from datasets.encoded_clip import decoded
from preprocessing import inference_transforms
from temporal_transforms import apply, loop_pad


@dataclass
class Window:
    """One clip of the stream: frames [start, end) of the video, seconds [t_start, t_end), the clip itself."""
    start: int
    end: int
    t_start: float
    t_end: float
    clip: torch.Tensor  # C x T x H x W, or V x C x T x H x W for several views
    sampled_end: int  # one past the last frame it samples: the results JSON's segment end, as inference's


def frame_view(spatial: Callable, clip: Any) -> torch.Tensor:
    """One frame (a 1-frame clip) through the checkpoint's spatial transform: C x 1 x h x w (V x C x 1 x h x w)."""
    out = apply(spatial, clip if getattr(spatial, 'takes_encoded', False) else decoded(clip))
    return decoded(out)


class ClipWindows:
    """Feed frames with ``push``; complete windows come back from it, the last (padded) one from ``finish``."""

    def __init__(self, spatial: Callable, duration: int, t_stride: int = 1, stride: Optional[int] = None):
        self.spatial, self.duration, self.t_stride = spatial, duration, max(1, t_stride)
        self.step = max(1, (stride or duration * self.t_stride) // self.t_stride)  # in subsampled frames
        self.next_start = 0  # the oldest window not yet complete, in subsampled frames
        self.held: Deque[Tuple[int, float, torch.Tensor]] = deque()  # (subsampled index, time, frame view)
        self.seen = 0  # subsampled frames so far
        self.frames = 0  # frames of the video so far
        self.last_time = 0.0
        self.frame_seconds = 0.0  # one frame's duration: 1 / fps until two frames show it
        self.peak = 0

    @classmethod
    def for_checkpoint(cls, prep: Any, stride: Optional[int] = None) -> 'ClipWindows':
        """The windows of a checkpoint's preprocessing (``preprocessing.Preprocessing``), ``stride`` in video frames."""
        return cls(inference_transforms(prep, stride)[1], prep.sample_duration, prep.sample_t_stride, stride)

    def push(self, index: int, time: float, clip: Any, seconds: float = 0.0) -> List[Window]:
        """Frame ``index`` (from 0, in order) at ``time`` seconds; the windows it completes. ``seconds``: one frame's
        nominal duration (1 / the stream's rate), until two frames' times show it."""
        if self.frames:  # one frame's duration: the last step (a stream may change its rate)
            self.frame_seconds = max(time - self.last_time, 0.0) or self.frame_seconds
        else:
            self.frame_seconds = seconds
        self.frames, self.last_time = index + 1, time
        if index % self.t_stride:
            return []
        s = self.seen
        self.seen += 1
        if s < self.next_start:  # between windows (a stride longer than a clip): not needed
            return []
        self.held.append((s, time, frame_view(self.spatial, clip)))
        self.peak = max(self.peak, len(self.held))
        done = []
        while self.held and self.held[-1][0] >= self.next_start + self.duration - 1:
            done.append(self._window(self.next_start, self.next_start + self.duration, padded=False))
            self.next_start += self.step
            while self.held and self.held[0][0] < self.next_start:
                self.held.popleft()
        return done

    def finish(self) -> Optional[Window]:
        """At the end of the stream: the window that runs past it, loop-padded (None if the last one ended it)."""
        if self.next_start >= self.seen or not self.held:
            return None
        window = self._window(self.next_start, self.seen, padded=True)
        self.next_start = self.seen
        self.held.clear()
        return window

    def end_time(self) -> float:
        """The end of the frames so far, in seconds (the last frame's time plus one frame)."""
        return self.last_time + self.frame_seconds

    def _window(self, first: int, stop: int, padded: bool) -> Window:
        """The window of subsampled frames [first, stop), loop-padded to ``duration`` when ``padded``."""
        frames = [(s, t, v) for s, t, v in self.held if first <= s < stop]
        order = loop_pad(list(range(len(frames))), self.duration) if padded else list(range(len(frames)))
        clip = torch.cat([frames[k][2] for k in order], dim=-3)
        sampled_end = frames[-1][0] * self.t_stride + 1
        if padded:  # to the end of the stream
            return Window(first * self.t_stride, self.frames, frames[0][1], self.end_time(), clip, sampled_end)
        # the frames after the last one sampled, up to the next, belong to the window too (not yet decoded)
        return Window(first * self.t_stride, stop * self.t_stride, frames[0][1],
                      frames[-1][1] + self.t_stride * self.frame_seconds, clip, sampled_end)
