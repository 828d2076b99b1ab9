"""Datasets built from the options: which loader, which transforms, which subset.

``get_training_data(opt)``, ``get_validation_data(opt)`` and ``get_inference_data(opt)``
return datasets with the transforms the options imply; batch them with ``collate``. Clips
leave the workers as uint8; ``get_normalization(opt)`` gives the callable that turns a batch
into the model's float input (run it on the device, where it is cheapest).
"""
from argparse import Namespace
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import spatial_transforms as st
import temporal_transforms as tt
from common.errors import UserError
from datasets.annotations import AnnotationError, VideoList, VideoRecord, load_video_list
from datasets.cubic_puzzle import CubicPuzzleDataset
from datasets.decode import VideoReadError
from datasets.formats.annotation_json import canonical_subset
from datasets.loaders import Hdf5Loader, JpgLoader
from datasets.samplers import EpochSampler
from datasets.video_dataset import MultiClipDataset, VideoDataset
from datasets.video_loader import VideoLoader
from preprocessing import Preprocessing, inference_transforms, normalization, subsampling


def get_loader(file_type: str, input_type: str = 'rgb', scaled: bool = False, planar: bool = False) -> Callable:
    """The frame loader for ``--file_type`` and ``--input_type``. Clips come back RGB, T x C x H x W;
    ``scaled``: JPEG clips come back encoded, decoded at their crop's scale (``datasets.encoded_clip``);
    ``planar``: 4:2:0 video clips come back as planes, converted after their crop (``datasets.planar_clip``)."""
    if input_type == 'rgb_flow':  # two roots: datasets.paired.paired_loader(opt)
        raise ValueError('--input_type rgb_flow reads hdf5 files under --video_path and --flow_path, not '
                         f'{file_type} files alone')
    if input_type == 'flow':
        if file_type != 'hdf5':
            raise ValueError('--input_type flow needs --file_type hdf5')
        return Hdf5Loader(('video_u', 'video_v'))
    loaders = {'jpg': lambda: JpgLoader(scaled=scaled), 'hdf5': lambda: Hdf5Loader(scaled=scaled),
               'video': lambda: VideoLoader(planar=planar)}
    if file_type not in loaders:
        raise ValueError(f"unknown file_type {file_type!r}: choose one of {', '.join(loaders)}")
    return loaders[file_type]()


def _clip_loader(opt: Namespace, videos: Any = None) -> Callable:
    """The loader of the clip datasets, with ``--jpeg_decode``; RGB + flow pairs (``--flow_path``) for rgb_flow;
    the samples of ``videos``' shards for ``--file_type shards``."""
    if opt.file_type == 'shards':
        from datasets.shards.samples import ShardLoader
        return ShardLoader(videos, scaled=getattr(opt, 'jpeg_decode', 'scaled') == 'scaled', planar=True)
    if opt.input_type == 'rgb_flow':
        from datasets.paired import paired_loader
        return paired_loader(opt)
    return get_loader(opt.file_type, opt.input_type, getattr(opt, 'jpeg_decode', 'scaled') == 'scaled', planar=True)


def get_normalization(opt: Namespace) -> st.ClipNormalize:
    """uint8 batch -> normalised float input, with the options' mean, std and value_scale."""
    return normalization(Preprocessing.from_opts(opt))


def _video_list(opt: Namespace, subset: str, whole_videos: bool = False) -> Any:
    if not opt.annotation_path or not opt.video_path:
        raise AnnotationError('--annotation_path and --video_path are required')
    if opt.file_type == 'shards':
        from datasets.formats.annotation_json import file_labels
        from datasets.formats.annotation_stream import read_entries
        from datasets.shards.samples import shard_videos
        path = _as_list(opt.annotation_path)[0]
        source = opt.video_path[0] if isinstance(opt.video_path, (list, tuple)) else opt.video_path
        header, _ = read_entries(path)  # the labels come before the database: its entries are not parsed
        return shard_videos(str(source), canonical_subset(subset), file_labels(path, header),
                            capacity=getattr(opt, 'shard_buffer', 64) + 8)
    return load_video_list(_as_list(opt.annotation_path), _as_list(opt.video_path), subset,
                           opt.file_type, opt.dataset, whole_videos,
                           getattr(opt, 'class_fraction', 1.0), getattr(opt, 'instance_fraction', 1.0),
                           getattr(opt, 'manual_seed', 1))


def _as_list(value) -> List[Path]:
    return [Path(v) for v in value] if isinstance(value, (list, tuple)) else [Path(value)]


def _subsampling(opt: Namespace) -> List[Callable]:
    return subsampling(Preprocessing.from_opts(opt))


def get_training_data(opt: Namespace) -> VideoDataset:
    """One randomly placed, augmented clip per training video (``--repeat_aug`` K: K clips from one read)."""
    temporal, spatial = training_transforms(opt)
    videos = _video_list(opt, 'training')
    return VideoDataset(videos, _clip_loader(opt, videos), temporal, spatial,
                        multilabel=getattr(opt, 'multilabel', False), reshaped=partial(training_transforms, opt),
                        repeat=getattr(opt, 'repeat_aug', 1))


def training_transforms(opt: Namespace, shape: Optional[Tuple[int, int, int]] = None) -> Tuple[Callable, Callable]:
    """The training clips' (temporal, spatial) transforms; ``shape`` (frames, side, temporal stride) replaces the
    options' ``--sample_duration``, ``--sample_size`` and ``--sample_t_stride`` (``datasets.multigrid``)."""
    if shape is not None:
        opt = Namespace(**dict(vars(opt), sample_duration=shape[0], sample_size=shape[1], sample_t_stride=shape[2]))
    crop = tt.TemporalRandomCrop if opt.train_t_crop == 'random' else tt.TemporalCenterCrop
    temporal = tt.TemporalCompose(_subsampling(opt) + [crop(opt.sample_duration)])
    if opt.train_crop == 'random':
        r = opt.train_crop_min_ratio
        spatial = [st.RandomResizedCrop(opt.sample_size, (opt.train_crop_min_scale, 1.0), (r, 1.0 / r))]
    elif opt.train_crop == 'corner':
        spatial = [st.MultiScaleCornerCrop(opt.sample_size)]
    else:
        spatial = [st.Resize(opt.sample_size), st.CenterCrop(opt.sample_size)]
    if not opt.no_hflip:
        spatial.append(st.RandomHorizontalFlip(flow=opt.input_type != 'rgb'))  # flow, rgb_flow: u reversed
    if opt.colorjitter and opt.input_type == 'rgb':
        spatial.append(st.ColorJitter())
    return temporal, st.Compose(spatial)


def get_validation_data(opt: Namespace) -> MultiClipDataset:
    """``n_val_samples`` evenly spaced centre-cropped clips per validation video."""
    temporal = tt.TemporalCompose(_subsampling(opt) + [tt.TemporalEvenCrop(opt.sample_duration, opt.n_val_samples)])
    spatial = st.Compose([st.Resize(opt.sample_size), st.CenterCrop(opt.sample_size)])
    videos = _video_list(opt, 'validation')
    return MultiClipDataset(videos, _clip_loader(opt, videos), temporal, spatial,
                            multilabel=getattr(opt, 'multilabel', False))


def get_inference_data(opt: Namespace, prep: Optional[Preprocessing] = None) -> MultiClipDataset:
    """The inference views of whole videos of ``--inference_subset``, preprocessed as ``prep``.

    ``prep`` is the model's recorded contract with the run's views (default: the options'):
    a sliding window (``--inference_stride``, in frames of the video) or ``inference_clips``
    uniform clips, each as one crop or several views (``preprocessing.inference_transforms``).
    """
    temporal, spatial = inference_transforms(prep or Preprocessing.from_opts(opt), opt.inference_stride)
    videos = _video_list(opt, canonical_subset(opt.inference_subset), whole_videos=True)
    return MultiClipDataset(videos, _clip_loader(opt, videos), temporal, spatial,
                            multilabel=getattr(opt, 'multilabel', False))


def get_pretext_data(opt: Namespace, subset: str) -> CubicPuzzleDataset:
    """Space-Time Cubic Puzzles from the videos of ``subset`` (labels unused); validation puzzles are fixed."""
    return CubicPuzzleDataset(_video_list(opt, subset), get_loader(opt.file_type, opt.input_type),
                              opt.sample_duration, opt.sample_size, jitter=opt.puzzle_jitter,
                              fixed=subset == 'validation')


def epoch_sampler(dataset: Any, seed: int, rank: int, world: int, batch_size: int, workers: int,
                  shard_buffer: int = 64) -> EpochSampler:
    """The training order of ``dataset``: a seeded permutation (files), or the shards' order (shards, one lane
    per DataLoader worker: ``datasets.shards.order``)."""
    from datasets.shards.samples import is_sharded
    if is_sharded(dataset):
        from datasets.shards.order import ShardSampler
        return ShardSampler(dataset.videos.shards.counts, seed=seed, rank=rank, world=world, batch_size=batch_size,
                            lanes=max(1, workers), block=shard_buffer)
    return EpochSampler(len(dataset), seed=seed, rank=rank, world=world, batch_size=batch_size)


def rank_share(dataset: Any, rank: int, world: int, batch_size: int, workers: int) -> Any:
    """This rank's part of an unshuffled pass (validation, inference) over ``dataset``: each video once over the
    ranks; a sharded dataset's part contiguous, in one lane per DataLoader worker (so each reads its shards)."""
    from torch.utils.data import Subset
    from datasets.shards.samples import is_sharded
    if is_sharded(dataset):
        from datasets.shards.order import validation_share
        return Subset(dataset, validation_share(dataset.videos.shards.counts, rank, world, batch_size, workers))
    return Subset(dataset, list(range(rank, len(dataset), world)))


def require_inputs(opt: Any) -> None:
    """The annotation files and the video folders a run will read exist (``UserError`` naming the first that
    does not); a run that reads no data (no training, validation or inference) needs none."""
    if opt.no_train and opt.no_val and not opt.inference:
        return
    for path in opt.annotation_path or []:
        if not Path(path).is_file():
            raise UserError(f'{path}: no such annotation file (--annotation_path)')
    for path in (opt.video_path if isinstance(opt.video_path, (list, tuple)) else [opt.video_path]):
        if path is not None and not isinstance(path, str) and not Path(path).exists():  # a str: a URL
            raise UserError(f'{path}: no such folder or file (--video_path)')


def require_videos(name: str, data: Any, say: bool = True) -> None:
    """No usable video is a user error (naming the file's subsets if none is this one); else (``say``) print the summary."""
    if len(data) == 0:
        note = data.videos.subset_note() or 'check --video_path, --annotation_path and --file_type'
        raise UserError(f'the {name} subset has no usable video ({data.videos.summary()}): {note}')
    if say:
        print(f'{name}: {data.videos.summary()}')


def check_class_count(names: Optional[List[str]], n_classes: int) -> None:
    """The annotation's label count must match the model's head."""
    if names is not None and len(names) != n_classes:
        raise UserError(f'the annotation file has {len(names)} classes but the model has {n_classes} '
                        f'outputs: pass --n_classes {len(names)} (with --n_pretrain_classes when fine-tuning)')


def file_dataset(paths: Sequence[Path], keys: Dict[Path, str], prep: Any, stride: Optional[int],
                 multilabel: bool) -> Tuple[Any, List[Tuple[Path, str]]]:
    """The files as a dataset of whole videos, and the (file, error) of those that cannot be opened."""
    loader = get_loader('video', prep.input_type, planar=True)
    records, failed = [], []
    for path in paths:
        try:
            n = len(loader.index(path))
        except VideoReadError as e:  # 'PATH: not a video: a JPEG image': the path is printed once
            failed.append((path, str(e).split(f'{path}: ', 1)[-1]))
            continue
        records.append(VideoRecord(keys[path], -1, path, range(n), (0, n)))
    temporal, spatial = inference_transforms(prep, stride)
    return MultiClipDataset(VideoList([], records), loader, temporal, spatial, multilabel=multilabel), failed
