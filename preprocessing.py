"""The preprocessing contract: how a model saw its input, recorded in its checkpoint.

A model is only meaningful with the clips it was trained on: their size, length, temporal
stride, normalisation and input type. ``Preprocessing`` holds those facts; ``from_opts``
takes them from a training run's options, ``from_checkpoint`` reads them back (older files
that record less get the original's defaults), and ``inference_transforms`` /
``normalization`` rebuild the clip pipeline from them. ``main.py --inference``,
``inference.py`` and feature extraction all go through these functions.

The inference views (``VIEW_FIELDS``: clips, crop, short side, flip) are an evaluation
choice recorded beside the model's facts: the flags of an evaluation run replace them
(``with_views``), and files that record none get the original's protocol (a sliding window
of centre crops).
"""
from argparse import Namespace
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, List, Mapping, Optional, Tuple

import torch

import spatial_transforms as st
import temporal_transforms as tt
from common.errors import UserError
from common.faults import report_fault

INFERENCE_CROPS = ('center', 'nocrop', 'three')
INPUT_CHANNELS = {'rgb': 3, 'flow': 2, 'rgb_flow': 5}  # --input_type -> clip channels (flow: u, v; rgb_flow: RGB, u, v)
VIEW_FIELDS = ('inference_clips', 'inference_crop', 'inference_short_side', 'inference_flip')
KINETICS_MEAN, KINETICS_STD = (tuple(v) for v in st.MEAN_STD['kinetics'])


@dataclass(frozen=True)
class Preprocessing:
    """Everything a model needs to see its input the way it was trained."""
    sample_size: int = 112
    sample_duration: int = 16
    sample_t_stride: int = 1
    mean: Tuple[float, ...] = KINETICS_MEAN
    std: Tuple[float, ...] = KINETICS_STD
    value_scale: float = 1
    input_type: str = 'rgb'
    inference_crop: str = 'center'
    inference_clips: int = 0  # 0: sliding window; N: N clips spaced uniformly over the video
    inference_short_side: int = 0  # 0: sample_size
    inference_flip: bool = False

    @classmethod
    def from_opts(cls, opt: Namespace) -> 'Preprocessing':
        """The contract of a run's parsed options (``opts.parse_opts``)."""
        return cls(sample_size=int(opt.sample_size), sample_duration=int(opt.sample_duration),
                   sample_t_stride=int(opt.sample_t_stride), mean=tuple(float(m) for m in opt.mean),
                   std=tuple(float(s) for s in opt.std), value_scale=opt.value_scale,
                   input_type=opt.input_type, **views_of(opt))

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any], source: str = 'checkpoint') -> 'Preprocessing':
        """The contract a checkpoint records; the keys of older files, then defaults, fill gaps."""
        recorded = ckpt.get('preprocessing')
        if isinstance(recorded, Mapping):
            known = {f.name for f in fields(cls)}
            values = {k: v for k, v in recorded.items() if k in known}
        else:  # files written before the contract existed, or by the original
            values = {k: ckpt[k] for k in ('sample_size', 'sample_duration', 'mean', 'std', 'value_scale')
                      if ckpt.get(k) is not None}
            if 'mean' not in values or 'std' not in values:
                report_fault(f'{source} records no normalisation: using the Kinetics mean and std')
        for key in ('mean', 'std'):
            if key in values:
                values[key] = tuple(float(x) for x in values[key])
        prep = cls(**values)
        prep.check(source)
        return prep

    def check(self, source: str) -> None:
        """Refuse values that no clip pipeline can use (a damaged or hand-edited file)."""
        ints = {'sample_size': self.sample_size, 'sample_duration': self.sample_duration,
                'sample_t_stride': self.sample_t_stride}
        bad = [f'{k}={v!r}' for k, v in ints.items() if not isinstance(v, int) or v < 1]
        if len(self.mean) != len(self.std) or not self.mean:
            bad.append(f'mean/std of lengths {len(self.mean)}/{len(self.std)}')
        if self.input_type not in INPUT_CHANNELS:
            bad.append(f'input_type={self.input_type!r}')
        if self.inference_crop not in INFERENCE_CROPS:
            bad.append(f'inference_crop={self.inference_crop!r}')
        views = {'inference_clips': self.inference_clips, 'inference_short_side': self.inference_short_side}
        bad += [f'{k}={v!r}' for k, v in views.items() if not isinstance(v, int) or isinstance(v, bool) or v < 0]
        if not isinstance(self.inference_flip, bool):
            bad.append(f'inference_flip={self.inference_flip!r}')
        if not bad and self.inference_crop != 'nocrop' and 0 < self.inference_short_side < self.sample_size:
            bad.append(f'inference_short_side={self.inference_short_side} below the {self.sample_size} crop')
        if bad:
            raise ValueError(f"{source}: unusable preprocessing record ({', '.join(bad)})")

    def to_dict(self) -> dict:
        """Plain types only, so that checkpoints stay loadable with ``weights_only``."""
        d = asdict(self)
        d['mean'], d['std'] = list(self.mean), list(self.std)
        return d

    def differences(self, opt: Namespace) -> List[str]:
        """The flags of ``opt`` that disagree with this contract, as ``--flag value`` (recorded values)."""
        given = Preprocessing.from_opts(opt)
        return [f'--{f.name} {getattr(self, f.name)}' for f in fields(self)
                if f.name not in ('mean', 'std', *VIEW_FIELDS) and getattr(self, f.name) != getattr(given, f.name)] + \
            (['mean/std'] if (self.mean, self.std) != (given.mean, given.std) else [])


def normalization(prep: Preprocessing) -> st.ClipNormalize:
    """uint8 batch -> the normalised float input the model was trained on."""
    return st.ClipNormalize(list(prep.mean), list(prep.std), prep.value_scale)


def subsampling(prep: Preprocessing) -> List[Callable]:
    """Every ``sample_t_stride``-th frame (nothing at stride 1)."""
    return [tt.TemporalSubsampling(prep.sample_t_stride)] if prep.sample_t_stride > 1 else []


def add_view_arguments(group: Any, recorded: bool = False) -> None:
    """The ``--inference_clips/_crop/_short_side/_flip`` flags; with ``recorded`` their default is
    None, meaning the checkpoint's recorded views (``views_from``), else the original's protocol."""
    from common.cli import int_in

    def default(value: Any) -> dict:
        return {'default': None} if recorded else {'default': value}
    tail = " (default: the checkpoint's)" if recorded else ' (default: %(default)s)'
    group.add_argument('--inference_clips', type=int_in(0), **default(0), help='Clips spaced uniformly over each '
                       'video (10 for the 10 x 3 views protocol); 0: the sliding window of --inference_stride' + tail)
    group.add_argument('--inference_crop', choices=INFERENCE_CROPS, **default('center'),
                       help='center crop; nocrop: the whole scaled frame; three: three crops along the longer '
                            'side (start, center, end)' + tail)
    group.add_argument('--inference_short_side', type=int_in(0), **default(0),
                       help='Scale the short side to this before cropping (256 in the 256-pixel protocols); '
                            '0: sample_size' + tail)
    group.add_argument('--inference_flip', action='store_true', **default(False),
                       help='Also average the horizontally flipped views' + tail)


def views_from(prep: Preprocessing, args: Any) -> Preprocessing:
    """``prep`` with the view flags ``add_view_arguments(recorded=True)`` parsed and were given, checked."""
    given = {k: getattr(args, k) for k in VIEW_FIELDS if getattr(args, k, None) is not None}
    return _checked_views(replace(prep, **given))


def _checked_views(prep: Preprocessing) -> Preprocessing:
    """``prep``, or a ``UserError`` naming the view flag a model's crop cannot take."""
    if prep.inference_crop != 'nocrop' and 0 < prep.inference_short_side < prep.sample_size:
        raise UserError(f'--inference_short_side {prep.inference_short_side} is below the model\'s '
                        f'{prep.sample_size}-pixel crop: give at least {prep.sample_size}, or --inference_crop nocrop')
    prep.check('the inference flags')
    return prep


def views_of(opt: Any) -> dict:
    """The inference view flags of parsed options (options recorded before they existed: the original's)."""
    return {'inference_crop': opt.inference_crop, 'inference_clips': int(getattr(opt, 'inference_clips', 0)),
            'inference_short_side': int(getattr(opt, 'inference_short_side', 0)),
            'inference_flip': bool(getattr(opt, 'inference_flip', False))}


def with_views(prep: Preprocessing, opt: Any) -> Preprocessing:
    """``prep`` with the inference views of ``opt`` (an evaluation choice, not the model's), checked."""
    return _checked_views(replace(prep, **views_of(opt)))


def spatial_views(prep: Preprocessing) -> List[str]:
    """The names of the spatial views of every clip, in the order they are stacked and averaged."""
    crops = list(st.LONG_SIDE_POSITIONS) if prep.inference_crop == 'three' else [prep.inference_crop]
    return [f'{c}{flip}' for c in crops for flip in (('', '-flip') if prep.inference_flip else ('',))]


def _view(crop: str, flip: bool, prep: Preprocessing) -> Callable:
    if crop == 'nocrop':
        first: List[Callable] = []
    elif prep.inference_crop == 'center':  # the original's CenterCrop, to the pixel
        first = [st.CenterCrop(prep.sample_size)]
    else:
        first = [st.LongSideCrop(prep.sample_size, crop)]
    return st.Compose(first + ([st.HorizontalFlip(prep.input_type != 'rgb')] if flip else []))


def inference_transforms(prep: Preprocessing, inference_stride: Optional[int] = None
                         ) -> Tuple[Callable, Callable]:
    """(temporal, spatial) transforms of inference over whole videos, the views ``prep`` records.

    Temporal: ``inference_clips`` N > 0 gives N clips spaced uniformly over the video,
    otherwise a sliding window whose ``inference_stride`` is in frames of the video (``None``:
    one clip length of the video, ``sample_duration * sample_t_stride``; with
    ``sample_t_stride`` s the window advances by stride / s subsampled frames). Spatial: the
    short side scaled to ``inference_short_side`` (0: ``sample_size``), then the crop; with
    several views (``three``, ``inference_flip``) a ``Views`` stack, V x C x T x H x W.
    """
    if prep.inference_clips > 0:
        clips: Callable = tt.TemporalUniformCrop(prep.sample_duration, prep.inference_clips)
    else:
        stride = inference_stride or prep.sample_duration * prep.sample_t_stride
        clips = tt.SlidingWindow(prep.sample_duration, max(1, stride // prep.sample_t_stride))
    temporal = tt.TemporalCompose(subsampling(prep) + [clips])
    resize = st.Resize(prep.inference_short_side or prep.sample_size)
    names = spatial_views(prep)
    if len(names) == 1:
        return temporal, st.Compose([resize, *_view(prep.inference_crop, False, prep).transforms])
    views = [_view(n.split('-')[0], n.endswith('-flip'), prep) for n in names]
    return temporal, st.Compose([resize, st.Views(views)])


def view_size(prep: Preprocessing, height: int, width: int) -> Tuple[int, int]:
    """(h, w) of every view of a ``height`` x ``width`` video: the crop, or (nocrop) the scaled frame."""
    if prep.inference_crop != 'nocrop':
        return prep.sample_size, prep.sample_size
    return st.short_side_size(height, width, prep.inference_short_side or prep.sample_size)


def protocol_text(prep: Preprocessing, stride: Optional[int] = None) -> str:
    """The views of a video in words: 'sliding window (stride 16) x 1 center crop' or '10 clips x 3 crops x 2 flips'."""
    if prep.inference_clips > 0:
        clips = f"{prep.inference_clips} clip{'s' if prep.inference_clips > 1 else ''}"
    else:
        clips = f'sliding window (stride {stride or prep.sample_duration * prep.sample_t_stride})'
    crop = {'three': '3 crops', 'center': '1 center crop', 'nocrop': 'the whole frame'}[prep.inference_crop]
    side = f' (short side {prep.inference_short_side or prep.sample_size})'
    return f"{clips} x {crop}{side}{' x 2 flips' if prep.inference_flip else ''}"


def resumed_preprocessing(opt: Namespace, ckpt: Optional[Mapping[str, Any]], say: bool = True) -> Preprocessing:
    """The options' contract, or a resumed checkpoint's recorded one, which then overrides the options.

    The inference views (``VIEW_FIELDS``) stay the options' (an evaluation choice, not the
    model's); differing flags are named in a note (``say``).
    """
    if ckpt is None or not isinstance(ckpt.get('preprocessing'), Mapping):
        return with_views(Preprocessing.from_opts(opt), opt)
    recorded = with_views(Preprocessing.from_checkpoint(ckpt, str(opt.resume_path)), opt)
    differ = recorded.differences(opt)
    if differ and say:
        print(f"note: {opt.resume_path} was trained with {' '.join(differ)}; the checkpoint's "
              'preprocessing is used, not the flags')
    for name, value in recorded.to_dict().items():
        setattr(opt, name, value)
    return recorded


def to_device(clips: torch.Tensor, device: torch.device, normalize: Callable,
              channels_last: bool = False) -> torch.Tensor:
    """uint8 clips -> normalised float input on ``device`` (the copy moves uint8: 4x fewer bytes)."""
    x = normalize(clips.to(device, non_blocking=True))
    return x.contiguous(memory_format=torch.channels_last_3d) if channels_last else x
