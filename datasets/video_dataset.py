"""Datasets of clips: one clip per video (training) or several per video (validation, inference).

A sample is a dict: ``clip`` (uint8 C x T x H x W) or ``clips`` (K x C x T x H x W) with
their ``segments``, ``label`` (a class index, -1 if unlabelled; with ``multilabel`` a float
multi-hot vector, all -1 if unlabelled), ``video_id`` and ``bad_frames`` (frames replaced by a
neighbour). A video that cannot give a clip is a data fault (a warning). A training item from
``EpochSampler`` then takes one of its fallbacks' samples, from the same rank's share of the
epoch, so the batch stays full (``samplers.with_fallbacks``: ``replaced`` lists the failures);
otherwise, or when every fallback fails too, it comes back as ``{'failed': reason, 'video_id':
...}``. ``collate`` drops such a sample from the batch and counts every failure once.

Items are plain indices or ``(index, seed, fallbacks)`` from ``EpochSampler``; every random draw
of a sample (temporal position, crop, flip, jitter) comes from the one generator
``samplers.sample_rng`` gives that item, handed to the transforms that need it.

In deferred mode (``device_decode.defer``, for ``--decode_device cuda``) a sample stops after
reading: ``{'deferred': Deferred}`` carries the JPEG bytes and the generator's state, and
``finish`` completes it in the main process from frames decoded there.
"""
import random
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch.utils.data import Dataset

from common.faults import report_fault
from datasets.annotations import AnnotationError, VideoList
from datasets.decode import VideoReadError, assemble
from datasets.device_decode import Deferred, restored_rng
from datasets.encoded_clip import crop_scales, decoded
from datasets.samplers import Item, Shape, item_shape, sample_rng, sample_seed, with_fallbacks
from spatial_transforms import is_encoded
from temporal_transforms import apply, is_random

Sample = Dict[str, Any]
Transforms = Tuple[Callable, Optional[Callable]]  # (temporal, spatial)


def clip_rngs(item: Item, rng: Optional[random.Random], k: int) -> List[Optional[random.Random]]:
    """The generators of ``--repeat_aug``'s ``k`` clips of one item: the item's own first (so one clip is the
    plain sample), then ones seeded from its seed and the clip's number (a pure function of the item)."""
    if rng is None:
        return [None] * k
    index, seed = (item[0], item[1]) if isinstance(item, tuple) else (item, rng.getrandbits(63))
    return [rng] + [random.Random(sample_seed(seed, 1 << 20 | j, index)) for j in range(1, k)]


def select_frames(frames: Any, positions: List[int]) -> Any:
    """The frames at ``positions`` of a loader's clip: a tensor's (T x C x H x W) or an encoded clip's view."""
    return frames.select(positions) if hasattr(frames, 'select') else frames[positions]


class VideoDataset(Dataset):
    """One clip per video: ``temporal_transform`` gives its frame indices."""

    def __init__(self, videos: VideoList, loader: Callable, temporal_transform: Callable,
                 spatial_transform: Optional[Callable] = None, multilabel: bool = False,
                 reshaped: Optional[Callable[[Shape], Transforms]] = None, repeat: int = 1):
        self.videos = videos
        self.records = videos.records
        self.class_names = videos.labels
        self.loader = loader
        self.temporal_transform = temporal_transform
        self.spatial_transform = spatial_transform
        self.multilabel = multilabel
        self.defer_decode = False  # device_decode.defer: hand JPEG bytes over undecoded
        self.reshaped = reshaped  # a clip shape (an item's, datasets.multigrid) -> its (temporal, spatial) transforms
        self._shaped: Dict[Shape, Transforms] = {}
        self.repeat = repeat  # clips per decoded video (--repeat_aug)
        if not multilabel:
            multi = self.records.first_multilabel()
            if multi is not None:
                raise AnnotationError(f'video {multi.video_id} has {len(multi.labels)} labels: '
                                      'train multi-label data with --multilabel')

    def __len__(self) -> int:
        return len(self.records)

    def _load(self, index: int, plan: Any, rng: Optional[random.Random], shape: Optional[Shape] = None
              ) -> Union[Sample, Deferred]:
        """The finished sample, a ``Deferred`` one (deferred mode), or the failed sample of an unreadable video."""
        try:
            frames, bad = self.loader(self.records[index].path, self._order(plan))
            if self.defer_decode and is_encoded(frames):
                return Deferred(index, plan, frames.blobs, frames.indices, frames.source, frames.reference_size(),
                                None if rng is None else rng.getstate(), shape)
            return self._finished(index, plan, frames, bad, rng, self._transforms(shape)[1])
        except VideoReadError as e:
            return self._failed(index, str(e))

    def _load_repeated(self, index: int, plans: List[Any], rngs: List[random.Random], shape: Optional[Shape]
                       ) -> Sample:
        """``--repeat_aug``: the frames of all ``plans`` read and decoded once, then one clip per plan, each
        with its own spatial draw; one sample of ``clips`` (K x C x T x H x W)."""
        union = sorted({i for plan in plans for i in plan})
        position = {i: p for p, i in enumerate(union)}
        spatial = self._transforms(shape)[1]
        try:
            frames, bad = self.loader(self.records[index].path, union)
            if hasattr(frames, 'decode_shared') and spatial is not None:  # JPEG bytes: each frame decoded once
                scales = crop_scales(frames, len(plans[0]), spatial, rngs)
                frames.decode_shared([([position[i] for i in plan], d) for plan, d in zip(plans, scales)])
            clips = [self._finished(index, plan, select_frames(frames, [position[i] for i in plan]), bad, rng, spatial)
                     for plan, rng in zip(plans, rngs)]
        except VideoReadError as e:
            return self._failed(index, str(e))
        record = self.records[index]
        return {'clips': torch.stack([c['clip'] for c in clips]), 'label': self.target(index),
                'video_id': record.video_id, 'segments': [c['segment'] for c in clips],
                'bad_frames': max(c['bad_frames'] for c in clips), 'views': 1}

    def finish(self, deferred: Deferred, frames: Dict[int, Optional[torch.Tensor]]) -> Sample:
        """A ``Deferred`` sample made whole from its decoded frames (on any device), as a worker would."""
        device = next((f.device for f in frames.values() if f is not None), torch.device('cpu'))
        try:
            video, bad = assemble(deferred.order, frames, lambda i: self._one_frame(deferred.index, i, device),
                                  deferred.source, lambda: deferred.size)
        except VideoReadError as e:  # after the worker's refetch: nothing takes its place any more
            report_fault(f'{e}; the video leaves the batch')
            return self._failed(deferred.index, str(e))
        return self._finished(deferred.index, deferred.plan, video, bad, restored_rng(deferred.rng_state),
                              self._transforms(deferred.shape)[1])

    def _transforms(self, shape: Optional[Shape]) -> Transforms:
        """(temporal, spatial) transforms of clips of ``shape`` (None: the dataset's own)."""
        if shape is None or self.reshaped is None:
            return self.temporal_transform, self.spatial_transform
        if shape not in self._shaped:
            self._shaped[shape] = self.reshaped(shape)
        return self._shaped[shape]

    def _finished(self, index: int, plan: Any, frames: Any, bad: int, rng: Optional[random.Random],
                  spatial: Optional[Callable]) -> Sample:
        """The sample of a clip's frames (T x C x H x W, or still encoded): spatial transform, then ``_package``.

        A clip still encoded (``encoded_clip.EncodedClip``) is decoded by the spatial transform at the
        scale its crop needs, and its replaced frames are counted then.
        """
        clip = frames if is_encoded(frames) else frames.transpose(0, 1)  # T x C x H x W -> C x T x H x W
        if spatial is not None:
            clip = apply(spatial, clip if getattr(spatial, 'takes_encoded', False) else decoded(clip), rng)
        clip = decoded(clip)
        return self._package(index, plan, clip, frames.bad if is_encoded(frames) else bad)

    def _one_frame(self, index: int, i: int, device: torch.device) -> Optional[torch.Tensor]:
        """Frame ``i`` of a video decoded here (C x H x W on ``device``), None if it cannot be read."""
        try:
            frames, _ = self.loader(self.records[index].path, [i])
        except VideoReadError:
            return None
        clip = frames.decode_for().transpose(0, 1) if is_encoded(frames) else frames  # T x C x H x W
        return clip[0].to(device)

    def _rng(self, item: Item) -> Tuple[int, Optional[random.Random]]:
        """The index and ``samplers.sample_rng``'s generator; none (and no global draw) if no transform is random."""
        if is_random(self.temporal_transform) or is_random(self.spatial_transform):
            return sample_rng(item)
        return (item[0] if isinstance(item, tuple) else item), None

    def target(self, index: int) -> Union[int, torch.Tensor]:
        """The training target of a video: its class index, or its multi-hot label vector."""
        record = self.records[index]
        if not self.multilabel:
            return record.label
        labels = record.label_set
        if not labels:
            return torch.full((len(self.class_names),), -1.0)
        y = torch.zeros(len(self.class_names))
        y[list(labels)] = 1.0
        return y

    def _failed(self, index: int, reason: str) -> Sample:
        """The sample of a video that gave no clip, with why."""
        return {'failed': reason, 'video_id': self.records[index].video_id}

    def _plan(self, index: int, rng: Optional[random.Random], temporal: Optional[Callable] = None) -> Any:
        """The clip's frame indices (``temporal``'s draw; default: ``temporal_transform``'s)."""
        return apply(temporal or self.temporal_transform, list(self.records[index].frames), rng)

    def _order(self, plan: Any) -> List[int]:
        """The frames to read for ``plan``, in order."""
        return plan

    def _package(self, index: int, plan: Any, clip: torch.Tensor, bad: int) -> Sample:
        record = self.records[index]
        return {'clip': clip, 'label': self.target(index), 'video_id': record.video_id,
                'segment': (min(plan), max(plan) + 1), 'bad_frames': bad}

    def __getitem__(self, item: Item) -> Sample:
        """The sample of ``item``; a training item whose video fails gets one of its fallbacks' (``samplers.with_fallbacks``)."""
        return with_fallbacks(self._sample, item)

    def _sample(self, item: Item) -> Sample:
        index, rng = self._rng(item)
        shape = item_shape(item)
        temporal = self._transforms(shape)[0]
        if self.repeat > 1:
            rngs = clip_rngs(item, rng, self.repeat)
            plans = [self._plan(index, r, temporal) for r in rngs]
            if not all(plans):
                return self._failed(index, f'{self.records[index].path}: no clip')
            return self._load_repeated(index, plans, rngs, shape)
        plan = self._plan(index, rng, temporal)
        if not plan:
            return self._failed(index, f'{self.records[index].path}: no clip')
        loaded = self._load(index, plan, rng, shape)
        return {'deferred': loaded} if isinstance(loaded, Deferred) else loaded


class MultiClipDataset(VideoDataset):
    """Several clips per video (``temporal_transform`` returns a list of clips).

    The frames of all clips are decoded once and transformed together (validation and
    inference transforms are deterministic), then split into clips. A spatial transform that
    gives several views (``spatial_transforms.Views``: V x C x T x H x W) makes every clip V
    entries of ``clips``, clip by clip, view by view; ``views`` says V.
    """

    def _order(self, plan: Any) -> List[int]:
        return [i for clip in plan for i in clip]

    def _package(self, index: int, plan: Any, video: torch.Tensor, bad: int) -> Sample:
        record = self.records[index]
        views = video if video.dim() == 5 else video.unsqueeze(0)  # V x C x (K T) x H x W
        stacked = torch.stack(views.split(len(plan[0]), dim=2)).flatten(0, 1)  # K V x C x T x H x W
        return {'clips': stacked, 'label': self.target(index), 'video_id': record.video_id,
                'segments': [(min(c), max(c) + 1) for c in plan], 'bad_frames': bad, 'views': len(views)}


def collate(samples: Sequence[Sample]) -> Dict[str, Any]:
    """Batch samples of either dataset; multi-clip samples are flattened clip by clip.

    Returns ``clip`` (N x C x T x H x W uint8, or None when every video failed), ``label``
    (N, or N x classes for multi-label), ``video_id`` and ``segment`` (lists of N), ``bad_frames`` (sum),
    ``failed`` (a list of (video_id, reason)) and ``views`` (consecutive entries that are views of one clip).
    """
    good = [s for s in samples if 'failed' not in s]
    failed = [(s['video_id'], s['failed']) for s in samples if 'failed' in s] + \
        [replaced for s in samples for replaced in s.get('replaced', ())]  # each failed video counted once
    batch: Dict[str, Any] = {'clip': None, 'label': torch.zeros(0, dtype=torch.long), 'video_id': [],
                             'segment': [], 'bad_frames': sum(s['bad_frames'] for s in good),
                             'failed': failed, 'views': 1}
    if not good:
        return batch
    if 'clips' in good[0]:
        batch['clip'] = torch.cat([s['clips'] for s in good])
        counts = [len(s['clips']) for s in good]
        batch['label'] = _labels([s['label'] for s, n in zip(good, counts) for _ in range(n)])
        batch['video_id'] = [s['video_id'] for s, n in zip(good, counts) for _ in range(n)]
        batch['views'] = good[0]['views']
        batch['segment'] = [seg for s in good for seg in s['segments'] for _ in range(s['views'])]
    else:
        batch['clip'] = torch.stack([s['clip'] for s in good])
        batch['label'] = _labels([s['label'] for s in good])
        batch['video_id'] = [s['video_id'] for s in good]
        batch['segment'] = [s['segment'] for s in good]
    return batch


def _labels(labels: List[Any]) -> torch.Tensor:
    """Class indices -> a long tensor; multi-hot vectors -> a stacked float tensor."""
    return torch.stack(labels) if isinstance(labels[0], torch.Tensor) else torch.tensor(labels)
