"""The preprocessing contract: how a model saw its input, recorded in its checkpoint.

A model is only meaningful with the clips it was trained on: their size, length, temporal
stride, normalisation and input type. ``Preprocessing`` holds those facts; ``from_opts``
takes them from a training run's options, ``from_checkpoint`` reads them back (older files
that record less get the original's defaults), and ``inference_transforms`` /
``normalization`` rebuild the clip pipeline from them. ``main.py --inference``,
``inference.py`` and feature extraction all go through these functions.
"""
from argparse import Namespace
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Callable, List, Mapping, Optional, Tuple

import spatial_transforms as st
import temporal_transforms as tt
from datasets.formats.faults import report_fault

INFERENCE_CROPS = ('center', 'nocrop')
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

    @classmethod
    def from_opts(cls, opt: Namespace) -> 'Preprocessing':
        """The contract of a run's parsed options (``opts.parse_opts``)."""
        return cls(sample_size=int(opt.sample_size), sample_duration=int(opt.sample_duration),
                   sample_t_stride=int(opt.sample_t_stride), mean=tuple(float(m) for m in opt.mean),
                   std=tuple(float(s) for s in opt.std), value_scale=opt.value_scale,
                   input_type=opt.input_type, inference_crop=opt.inference_crop)

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
        if self.input_type not in ('rgb', 'flow'):
            bad.append(f'input_type={self.input_type!r}')
        if self.inference_crop not in INFERENCE_CROPS:
            bad.append(f'inference_crop={self.inference_crop!r}')
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
                if f.name not in ('mean', 'std') and getattr(self, f.name) != getattr(given, f.name)] + \
            (['mean/std'] if (self.mean, self.std) != (given.mean, given.std) else [])


def normalization(prep: Preprocessing) -> st.ClipNormalize:
    """uint8 batch -> the normalised float input the model was trained on."""
    return st.ClipNormalize(list(prep.mean), list(prep.std), prep.value_scale)


def subsampling(prep: Preprocessing) -> List[Callable]:
    """Every ``sample_t_stride``-th frame (nothing at stride 1)."""
    return [tt.TemporalSubsampling(prep.sample_t_stride)] if prep.sample_t_stride > 1 else []


def to_rgb(file_type: str, prep: Preprocessing) -> List[Callable]:
    """Video files are decoded to YUV and stay so through crop and resize: convert them last."""
    return [st.YUVToRGB()] if file_type == 'video' and prep.input_type == 'rgb' else []


def inference_transforms(prep: Preprocessing, file_type: str, inference_stride: Optional[int] = None
                         ) -> Tuple[Callable, Callable]:
    """(temporal, spatial) transforms of sliding-window inference over whole videos.

    ``inference_stride`` is in frames of the video (``None``: one clip length of the video,
    ``sample_duration * sample_t_stride``); with ``sample_t_stride`` s the window advances by
    stride / s subsampled frames.
    """
    stride = inference_stride or prep.sample_duration * prep.sample_t_stride
    window = tt.SlidingWindow(prep.sample_duration, max(1, stride // prep.sample_t_stride))
    temporal = tt.TemporalCompose(subsampling(prep) + [window])
    spatial: List[Callable] = [st.Resize(prep.sample_size)]
    if prep.inference_crop == 'center':
        spatial.append(st.CenterCrop(prep.sample_size))
    return temporal, st.Compose(spatial + to_rgb(file_type, prep))


def resumed_preprocessing(opt: Namespace, ckpt: Optional[Mapping[str, Any]], say: bool = True) -> Preprocessing:
    """The options' contract, or a resumed checkpoint's recorded one, which then overrides the options.

    ``inference_crop`` stays the options' (an evaluation choice, not the model's); differing
    flags are named in a note (``say``).
    """
    if ckpt is None or not isinstance(ckpt.get('preprocessing'), Mapping):
        return Preprocessing.from_opts(opt)
    recorded = replace(Preprocessing.from_checkpoint(ckpt, str(opt.resume_path)), inference_crop=opt.inference_crop)
    differ = recorded.differences(opt)
    if differ and say:
        print(f"note: {opt.resume_path} was trained with {' '.join(differ)}; the checkpoint's "
              'preprocessing is used, not the flags')
    for name, value in recorded.to_dict().items():
        setattr(opt, name, value)
    return recorded
