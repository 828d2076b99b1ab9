"""Spatial transforms on whole clips: C x T x H x W tensors, uint8 until normalisation.

Every transform is a callable applied once per clip, so random parameters (crop box, scale,
corner, flip, jitter) are drawn once per clip and shared by all its frames, as in the
original 3D-ResNets-PyTorch, without its per-frame PIL round trips. Crops are views; the
one resize per clip runs on the uint8 frames (bilinear with antialiasing, like PIL's).
Normalisation (``ClipNormalize``) fuses the original ToTensor, ScaleValue and Normalize into
one float operation that can run in the worker or, cheaper, on the device for a whole batch.

Random transforms (``needs_rng``) take their draws from a ``random.Random`` passed at call
time, ``t(clip, rng)``, never from the global ``random``; ``Compose`` hands its ``rng`` to
those that need it (the rule is ``temporal_transforms.apply``), so deterministic ones stay
``t(clip)``. The datasets pass one generator per sample, seeded by the sampler.
"""
import math
import random
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torchvision.transforms.v2.functional as TF

from temporal_transforms import apply, is_random

Size = Union[int, Tuple[int, int]]

# The original's mean.py tables, on [0, 1] input (multiplied by value_scale when used).
MEAN_STD = {
    'activitynet': ((0.4477, 0.4209, 0.3906), (0.2767, 0.2695, 0.2714)),
    'kinetics': ((0.4345, 0.4051, 0.3775), (0.2768, 0.2713, 0.2737)),
    '0.5': ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}
# MultiScaleCornerCrop scales used by the original's main.py: 1, 2^-1/4, 2^-1/2, 2^-3/4, 1/2.
CORNER_SCALES = tuple(2 ** (-k / 4) for k in range(5))
CORNER_POSITIONS = ('c', 'tl', 'tr', 'bl', 'br')


def get_mean_std(value_scale: float = 1, dataset: str = 'kinetics', no_mean_norm: bool = False,
                 no_std_norm: bool = False) -> Tuple[List[float], List[float]]:
    """The original's normalisation for ``--mean_dataset``/``--value_scale``/``--no_*_norm``."""
    if dataset not in MEAN_STD:
        raise ValueError(f"unknown mean_dataset {dataset!r}: choose one of {', '.join(MEAN_STD)}")
    mean, std = MEAN_STD[dataset]
    mean = [0.0] * 3 if no_mean_norm else [m * value_scale for m in mean]
    std = [1.0] * 3 if no_std_norm else [s * value_scale for s in std]
    return mean, std


def resize_clip(clip: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """Resize C x T x H x W to (h, w); frames are resized as one batch of RGB images."""
    if tuple(clip.shape[-2:]) == tuple(size):
        return clip
    # torchvision's fast uint8 path wants T x C x H x W (3 channels per image).
    return TF.resize(clip.transpose(0, 1), list(size), antialias=True).transpose(0, 1)


def is_encoded(clip: object) -> bool:
    """Whether ``clip`` is not a tensor yet (``datasets.encoded_clip.EncodedClip``, ``datasets.planar_clip.PlanarClip``):
    ``crop_resized(box, size)`` makes a tensor of a box of it, ``decode_for()`` of all of it."""
    return hasattr(clip, 'decode_for')


def crop_resize(clip: torch.Tensor, box: Tuple[int, int, int, int], size: Tuple[int, int]) -> torch.Tensor:
    """The ``box`` (top, left, h, w) of every frame resized to ``size``; an encoded clip is
    decoded at the smallest scale where the box still covers ``size``."""
    if is_encoded(clip):
        return clip.crop_resized(box, size)  # type: ignore[attr-defined]
    top, left, h, w = box
    return resize_clip(clip[..., top:top + h, left:left + w], size)


def short_side_size(height: int, width: int, size: int) -> Tuple[int, int]:
    """(h, w) with the short side scaled to ``size`` (torchvision's Resize(int) rounding)."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


class Compose:
    """Apply transforms in order, handing ``rng`` to those that draw random parameters.

    An encoded clip (``is_encoded``) is handed as it is to a transform that ``takes_encoded``
    (a crop-and-resize, which picks the decoding scale) and decoded at full size before any other.
    """

    takes_encoded = True

    def __init__(self, transforms: Sequence[Callable[..., torch.Tensor]]):
        self.transforms = list(transforms)

    @property
    def needs_rng(self) -> bool:
        """Whether any of the transforms draws random parameters."""
        return any(is_random(t) for t in self.transforms)

    def __call__(self, clip: torch.Tensor, rng: Optional[random.Random] = None) -> torch.Tensor:
        for t in self.transforms:
            if is_encoded(clip) and not getattr(t, 'takes_encoded', False):
                clip = clip.decode_for()  # type: ignore[attr-defined]
            clip = apply(t, clip, rng)
        return clip

    def __repr__(self) -> str:
        return f"Compose({', '.join(type(t).__name__ for t in self.transforms)})"


class Resize:
    """Short side to ``size`` (int, aspect kept) or exactly (h, w)."""

    takes_encoded = True

    def __init__(self, size: Size):
        self.size = size

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        h, w = clip.shape[-2:]
        target = short_side_size(h, w, self.size) if isinstance(self.size, int) else tuple(self.size)
        return crop_resize(clip, (0, 0, h, w), target)  # type: ignore[arg-type]


def _square(size: Size) -> Tuple[int, int]:
    return (size, size) if isinstance(size, int) else tuple(size)  # type: ignore[return-value]


class CenterCrop:
    """The central ``size`` crop (torchvision's rounding)."""

    def __init__(self, size: Size):
        self.size = _square(size)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        return TF.center_crop(clip, list(self.size))


def corner_box(height: int, width: int, size: int, position: str) -> Tuple[int, int]:
    """(top, left) of a ``size`` square at a corner or the centre, as the original's CornerCrop."""
    if position == 'c':
        return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))
    top = 0 if position[0] == 't' else height - size
    left = 0 if position[1] == 'l' else width - size
    return top, left


class CornerCrop:
    """A ``size`` square at ``position`` (c, tl, tr, bl, br), random per clip (from ``rng``) if None."""

    def __init__(self, size: int, position: Optional[str] = None):
        if position is not None and position not in CORNER_POSITIONS:
            raise ValueError(f'position must be one of {CORNER_POSITIONS}, not {position!r}')
        self.size = size
        self.position = position
        self.needs_rng = position is None

    def __call__(self, clip: torch.Tensor, rng: Optional[random.Random] = None) -> torch.Tensor:
        h, w = clip.shape[-2:]
        if self.position is None and rng is None:
            raise TypeError('CornerCrop without a position draws one: pass it a random.Random')
        position = self.position or rng.choice(CORNER_POSITIONS)  # type: ignore[union-attr]
        top, left = corner_box(h, w, self.size, position)
        return clip[..., top:top + self.size, left:left + self.size]


LONG_SIDE_POSITIONS = ('start', 'center', 'end')


class LongSideCrop:
    """A ``size`` square at ``position`` along the longer side (start, center, end), centred across it.

    ``position`` 'start' is the left (or top) edge, 'end' the right (or bottom) one; three of
    them are the three-crop views of multi-view testing. Centres round as ``CenterCrop``.
    """

    def __init__(self, size: int, position: str):
        if position not in LONG_SIDE_POSITIONS:
            raise ValueError(f'position must be one of {LONG_SIDE_POSITIONS}, not {position!r}')
        self.size = size
        self.position = position

    def offset(self, length: int) -> int:
        """The crop's first pixel on a side of ``length`` pixels."""
        return {'start': 0, 'center': int(round((length - self.size) / 2.0)), 'end': length - self.size}[self.position]

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        h, w = clip.shape[-2:]
        if min(h, w) < self.size:
            raise ValueError(f'a {h}x{w} frame is smaller than the {self.size} crop')
        across = LongSideCrop(self.size, 'center')
        top, left = (self.offset(h), across.offset(w)) if h > w else (across.offset(h), self.offset(w))
        return clip[..., top:top + self.size, left:left + self.size]


class Views:
    """Several deterministic views of one clip (crops, flips), stacked: V x C x T x H x W."""

    def __init__(self, views: Sequence[Callable[[torch.Tensor], torch.Tensor]]):
        self.views = list(views)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        return torch.stack([view(clip) for view in self.views])

    def __repr__(self) -> str:
        return f"Views({', '.join(repr(v) for v in self.views)})"


class MultiScaleCornerCrop:
    """Per clip: a scale and a corner; crop a square of ``scale * short side``, resize to ``size``."""

    needs_rng = True
    takes_encoded = True

    def __init__(self, size: int, scales: Sequence[float] = CORNER_SCALES,
                 positions: Sequence[str] = CORNER_POSITIONS):
        self.size = size
        self.scales = list(scales)
        self.positions = list(positions)

    def __call__(self, clip: torch.Tensor, rng: random.Random) -> torch.Tensor:
        h, w = clip.shape[-2:]
        side = int(min(h, w) * rng.choice(self.scales))
        top, left = corner_box(h, w, side, rng.choice(self.positions))
        return crop_resize(clip, (top, left, side, side), (self.size, self.size))


class RandomResizedCrop:
    """Per clip: a box of random area fraction (``scale``) and aspect (``ratio``), resized to ``size``.

    Defaults are the original's ``--train_crop random``: scale 0.25-1, ratio 3/4-4/3.
    """

    needs_rng = True
    takes_encoded = True

    def __init__(self, size: Size, scale: Tuple[float, float] = (0.25, 1.0),
                 ratio: Tuple[float, float] = (3 / 4, 4 / 3)):
        self.size = _square(size)
        self.scale = scale
        self.ratio = ratio

    def get_params(self, height: int, width: int, rng: random.Random) -> Tuple[int, int, int, int]:
        """(top, left, h, w) of the box, drawn from ``rng`` as torchvision's RandomResizedCrop does."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(*self.scale)
            aspect = math.exp(rng.uniform(*log_ratio))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return rng.randint(0, height - h), rng.randint(0, width - w), h, w
        # Fallback: the central crop with the ratio clamped into range.
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            h, w = height, width
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, clip: torch.Tensor, rng: random.Random) -> torch.Tensor:
        return crop_resize(clip, self.get_params(*clip.shape[-2:], rng), self.size)


class RandomHorizontalFlip:
    """Mirror the whole clip with probability ``p``.

    With ``flow`` the clip ends with uint8 optical-flow channels (u, v with zero at 128; alone or
    after RGB): mirroring also reverses horizontal motion, so u becomes 255 - u (``hflip``).
    """

    needs_rng = True

    def __init__(self, p: float = 0.5, flow: bool = False):
        self.p = p
        self.flow = flow

    def __call__(self, clip: torch.Tensor, rng: random.Random) -> torch.Tensor:
        return hflip(clip, self.flow) if rng.random() < self.p else clip


def hflip(clip: torch.Tensor, flow: bool = False) -> torch.Tensor:
    """The clip mirrored left-right; with ``flow`` its channels end with uint8 flow u, v (a flow clip:
    u, v; an RGB + flow clip: R, G, B, u, v), and u becomes 255 - u (horizontal motion reversed)."""
    clip = clip.flip(-1)
    if not flow:
        return clip
    u = clip.shape[0] - 2
    return torch.cat([clip[:u], 255 - clip[u:u + 1], clip[u + 1:]])


class HorizontalFlip:
    """Always mirror the clip (``hflip``): the flipped views of multi-view testing."""

    def __init__(self, flow: bool = False):
        self.flow = flow

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        return hflip(clip, self.flow)


class ColorJitter:
    """Random brightness, contrast, saturation and hue, one draw per clip, in random order.

    Unlike the original's (a no-op with its zero defaults, a crash on torchvision >= 0.8),
    the default strengths are those commonly used for video: 0.4, 0.4, 0.4 and 0.1.
    """

    needs_rng = True

    def __init__(self, brightness: float = 0.4, contrast: float = 0.4, saturation: float = 0.4,
                 hue: float = 0.1):
        if not 0 <= hue <= 0.5:
            raise ValueError(f'hue must be in [0, 0.5], not {hue}')
        self.brightness, self.contrast, self.saturation, self.hue = brightness, contrast, saturation, hue

    def __call__(self, clip: torch.Tensor, rng: random.Random) -> torch.Tensor:
        frames = clip.transpose(0, 1)  # T x C x H x W: a batch of RGB images
        ops = []
        if self.brightness > 0:
            f = rng.uniform(max(0.0, 1 - self.brightness), 1 + self.brightness)
            ops.append(lambda x, f=f: TF.adjust_brightness(x, f))
        if self.contrast > 0:
            f = rng.uniform(max(0.0, 1 - self.contrast), 1 + self.contrast)
            ops.append(lambda x, f=f: TF.adjust_contrast(x, f))
        if self.saturation > 0:
            f = rng.uniform(max(0.0, 1 - self.saturation), 1 + self.saturation)
            ops.append(lambda x, f=f: TF.adjust_saturation(x, f))
        if self.hue > 0:
            f = rng.uniform(-self.hue, self.hue)
            ops.append(lambda x, f=f: TF.adjust_hue(x, f))
        rng.shuffle(ops)
        for op in ops:
            frames = op(frames)
        return frames.transpose(0, 1)


class PickFirstChannels:
    """Keep the first ``n`` channels (optical flow stored as images)."""

    def __init__(self, n: int):
        self.n = n

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        return clip[:self.n]


class ScaleValue:
    """Multiply by ``s`` (as a float tensor)."""

    def __init__(self, s: float):
        self.s = s

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        return clip.float() * self.s


class Normalize:
    """Per-channel ``(x - mean) / std`` on a float clip (C x T x H x W or N x C x T x H x W)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean = list(mean)
        self.std = list(std)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        shape = (-1, 1, 1, 1)
        mean = torch.tensor(self.mean, dtype=clip.dtype, device=clip.device).view(shape)
        std = torch.tensor(self.std, dtype=clip.dtype, device=clip.device).view(shape)
        return (clip - mean) / std


class ClipNormalize:
    """uint8 clips (C x T x H x W, or batches of them) to the normalised floats the model sees.

    Equals the original's ToTensor (x / 255), ScaleValue(value_scale) and
    Normalize(mean, std) with mean and std already multiplied by value_scale, in one pass.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], value_scale: float = 1,
                 dtype: torch.dtype = torch.float32):
        self.mean = list(mean)
        self.std = list(std)
        self.value_scale = value_scale
        self.dtype = dtype

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        n = clip.shape[-4]
        mean = torch.tensor(self.mean[:n], dtype=self.dtype, device=clip.device).view(-1, 1, 1, 1)
        std = torch.tensor(self.std[:n], dtype=self.dtype, device=clip.device).view(-1, 1, 1, 1)
        x = clip.to(self.dtype)
        if clip.dtype == torch.uint8:
            x = x * (self.value_scale / 255.0)
        return (x - mean) / std

    def __repr__(self) -> str:
        return f'ClipNormalize(mean={self.mean}, std={self.std}, value_scale={self.value_scale})'
