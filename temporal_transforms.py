"""Temporal transforms: which frames of a video make a clip.

Each transform maps a list of frame indices to a list of frame indices (one clip) or, for
``TemporalEvenCrop``, ``SlidingWindow`` and ``TemporalUniformCrop``, to a list of clips. They keep the original
3D-ResNets-PyTorch semantics (clip placement, loop padding of short videos) with its bugs
fixed: ``TemporalRandomCrop`` can pick the last window, ``TemporalEvenCrop`` works with one
sample, and crops work on *positions* in the given list, so a preceding
``TemporalSubsampling`` is honoured in validation and inference (the original rebuilt
contiguous frame ranges and silently undid it).

Randomness is explicit: a transform that draws random parameters sets ``needs_rng`` and is
called as ``t(x, rng)`` with a ``random.Random`` the dataset owns (one per sample, see
``datasets.samplers.sample_rng``); deterministic transforms are called as ``t(x)`` and need
not know about it. ``apply`` is that rule, for temporal and spatial transforms alike.
"""
import math
import random
from typing import Any, Callable, List, Optional, Sequence, Union

Indices = List[int]
Clips = List[Indices]


def is_random(transform: Callable) -> bool:
    """Whether ``transform`` draws random parameters, i.e. must be called as ``transform(x, rng)``."""
    return bool(getattr(transform, 'needs_rng', False))


def apply(transform: Callable, x: Any, rng: Optional[random.Random] = None) -> Any:
    """``transform(x, rng)`` if it draws random parameters, else ``transform(x)``."""
    if not is_random(transform):
        return transform(x)
    if rng is None:
        raise TypeError(f'{type(transform).__name__} draws random parameters: pass it a random.Random')
    return transform(x, rng)


def loop_pad(indices: Sequence[int], size: int) -> Indices:
    """Repeat ``indices`` cyclically up to ``size`` entries ([1, 2, 3] -> [1, 2, 3, 1, 2, ...])."""
    out = list(indices)
    if not out:
        return out
    while len(out) < size:
        out.extend(indices[:size - len(out)])
    return out


class LoopPadding:
    """Loop-pad to ``size`` frames; longer inputs pass unchanged."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, indices: Sequence[int]) -> Indices:
        return loop_pad(indices, self.size)


class TemporalBeginCrop:
    """The first ``size`` frames, loop-padded."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, indices: Sequence[int]) -> Indices:
        return loop_pad(list(indices[:self.size]), self.size)


class TemporalCenterCrop:
    """``size`` frames around the middle, loop-padded."""

    def __init__(self, size: int):
        self.size = size

    def __call__(self, indices: Sequence[int]) -> Indices:
        begin = max(0, len(indices) // 2 - self.size // 2)
        return loop_pad(list(indices[begin:begin + self.size]), self.size)


class TemporalRandomCrop:
    """``size`` consecutive frames at a uniformly random start (every window possible), loop-padded."""

    needs_rng = True

    def __init__(self, size: int):
        self.size = size

    def __call__(self, indices: Sequence[int], rng: random.Random) -> Indices:
        begin = rng.randint(0, max(0, len(indices) - self.size))
        return loop_pad(list(indices[begin:begin + self.size]), self.size)


class TemporalEvenCrop:
    """Up to ``n_samples`` clips of ``size`` frames spread evenly over the video.

    Starts are every ``ceil((n - 1 - size) / (n_samples - 1))`` frames (at least 1), as in
    the original; the first clip that runs past the end is loop-padded and is the last one.
    With ``n_samples`` 1 the single clip is the centre one.
    """

    def __init__(self, size: int, n_samples: int = 1):
        if n_samples < 1:
            raise ValueError(f'n_samples must be >= 1, not {n_samples}')
        self.size = size
        self.n_samples = n_samples

    def __call__(self, indices: Sequence[int]) -> Clips:
        n = len(indices)
        if n == 0:
            return []
        if self.n_samples == 1:
            starts: Sequence[int] = [max(0, (n - self.size) // 2)]
        else:
            step = max(1, math.ceil((n - 1 - self.size) / (self.n_samples - 1)))
            starts = range(0, n, step)
        clips: Clips = []
        for start in starts:
            clip = list(indices[start:start + self.size])
            if len(clip) < self.size:
                clips.append(loop_pad(clip, self.size))
                break
            clips.append(clip)
            if len(clips) == self.n_samples:
                break
        return clips


class SlidingWindow:
    """Clips of ``size`` frames starting every ``stride`` frames (0: ``size``); the first
    window that runs past the end is loop-padded and is the last one."""

    def __init__(self, size: int, stride: int = 0):
        self.size = size
        self.stride = stride if stride > 0 else size

    def __call__(self, indices: Sequence[int]) -> Clips:
        clips: Clips = []
        for start in range(0, len(indices), self.stride):
            clip = list(indices[start:start + self.size])
            if len(clip) < self.size:
                clips.append(loop_pad(clip, self.size))
                break
            clips.append(clip)
        return clips


class TemporalUniformCrop:
    """``n_clips`` clips of ``size`` frames spaced uniformly over the whole video (multi-view testing).

    The possible starts 0 .. n - size are cut into ``n_clips`` equal intervals and each clip
    starts at the middle of its own (mmaction2's test-mode ``SampleFrames``): one clip is the
    centre one, ten cover the video evenly. A video shorter than ``size`` gives ``n_clips``
    loop-padded copies of itself, so every video has the same number of views.
    """

    def __init__(self, size: int, n_clips: int):
        if n_clips < 1:
            raise ValueError(f'n_clips must be >= 1, not {n_clips}')
        self.size = size
        self.n_clips = n_clips

    def starts(self, n: int) -> List[int]:
        """The first positions of the clips in a list of ``n`` frames."""
        span = max(0, n - self.size) + 1
        return [int(span * (i + 0.5) / self.n_clips) for i in range(self.n_clips)]

    def __call__(self, indices: Sequence[int]) -> Clips:
        if not indices:
            return []
        return [loop_pad(list(indices[s:s + self.size]), self.size) for s in self.starts(len(indices))]


class TemporalSubsampling:
    """Every ``stride``-th frame."""

    def __init__(self, stride: int):
        if stride < 1:
            raise ValueError(f'stride must be >= 1, not {stride}')
        self.stride = stride

    def __call__(self, indices: Sequence[int]) -> Indices:
        return list(indices[::self.stride])


Transform = Callable[[Sequence[int]], Union[Indices, Clips]]


class TemporalCompose:
    """Apply transforms in order; once the output is a list of clips, later ones act per clip.

    ``rng`` goes to the transforms that draw random parameters; it may be left out when none does.
    """

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    @property
    def needs_rng(self) -> bool:
        """Whether any of the transforms draws random parameters."""
        return any(is_random(t) for t in self.transforms)

    def __call__(self, indices: Sequence[int], rng: Optional[random.Random] = None) -> Union[Indices, Clips]:
        out: Union[Indices, Clips] = list(indices)
        for t in self.transforms:
            if out and isinstance(out[0], list):
                out = [apply(t, clip, rng) for clip in out]  # type: ignore[arg-type]
            else:
                out = apply(t, out, rng)
        return out


Compose = TemporalCompose
