"""``--decode_device cuda``: workers only read JPEG bytes; the main process decodes whole batches on the device.

A clip dataset in deferred mode (``defer``) draws its clip positions in the worker, reads the
frames' bytes and hands them over with the state of the sample's random generator
(``Deferred``). ``DeviceDecoding`` wraps the DataLoader: it decodes every JPEG of a batch in
one call (``datasets.decode.decode_many``: batched nvJPEG on CUDA, libjpeg-turbo on the CPU),
then finishes each sample with the dataset's own code (``VideoDataset.finish``): bad frames
replaced, the spatial transform run on the device with the generator restored, so crops, sizes
and flips are the ones the worker path draws. Clips a worker could not defer (no readable
JPEG header) arrive decoded and are moved to the device.
"""
import random
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch.utils.data import DataLoader

from common.errors import UserError
from datasets.decode import decode_many
from datasets.frame_sizes import Size


@dataclass
class Deferred:
    """A sample read in a worker, to be decoded and transformed in the main process."""
    index: int                         # the video's record
    plan: Any                          # the dataset's clip positions (a clip, or a list of clips)
    blobs: Dict[int, Optional[bytes]]  # frame index -> JPEG bytes (None: missing)
    order: List[int]                   # the frames of the clip(s), in order, repeats allowed
    source: str                        # the file, for messages
    size: Size                         # the size a frame must have not to be replaced (``EncodedClip.reference_size``)
    rng_state: Optional[Tuple]         # the sample's generator after the temporal draw
    shape: Optional[Tuple] = None      # the clip shape of its batch (datasets.multigrid); None: the dataset's own


def defer(dataset: Any) -> Any:
    """Put a clip dataset (``VideoDataset``/``MultiClipDataset``) in deferred mode; refuse other loaders."""
    if not hasattr(dataset, 'finish'):
        raise UserError(f'--decode_device cuda serves clip datasets, not {type(dataset).__name__} (--pretext)')
    loader = dataset.loader
    if not hasattr(loader, 'scaled') or getattr(loader, 'mode', 'RGB') != 'RGB':
        raise UserError('--decode_device cuda decodes JPEG frames: it needs --file_type jpg or hdf5 '
                         f'and --input_type rgb (this dataset reads with {type(loader).__name__})')
    dataset.loader.scaled = True  # hand clips over encoded
    dataset.defer_decode = True
    return dataset


def keep_samples(samples: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The DataLoader's collate in deferred mode: the samples as they are (``DeviceDecoding`` collates)."""
    return list(samples)


def finish_batch(dataset: Any, samples: Sequence[Dict[str, Any]], device: torch.device) -> List[Dict[str, Any]]:
    """Decode the deferred samples of one batch on ``device`` and finish them; move the others there."""
    deferred = [s['deferred'] for s in samples if 'deferred' in s]
    decoded = decode_many({(n, i): b for n, d in enumerate(deferred) for i, b in d.blobs.items()}, device=device)
    frames: List[Dict[int, Optional[torch.Tensor]]] = [dict.fromkeys(d.blobs) for d in deferred]
    for (n, i), frame in decoded.items():
        frames[n][i] = frame
    finished = iter(dataset.finish(d, f) for d, f in zip(deferred, frames))
    out = []
    for s in samples:
        if 'deferred' in s:  # a sample that took a failed video's place still counts that failure
            out.append(dict(next(finished), **({'replaced': s['replaced']} if s.get('replaced') else {})))
        else:
            out.append({k: (v.to(device) if k in ('clip', 'clips') else v) for k, v in s.items()})
    return out


def restored_rng(state: Optional[Tuple]) -> Optional[random.Random]:
    """A generator in the state a worker handed over (None stays None)."""
    if state is None:
        return None
    rng = random.Random()
    rng.setstate(state)
    return rng


class DeviceDecoding:
    """Batches of a deferred-mode DataLoader, decoded and transformed on ``device``, then collated."""

    def __init__(self, loader: DataLoader, device: torch.device, collate: Any):
        self.loader = loader
        self.dataset = getattr(loader.dataset, 'dataset', loader.dataset)  # a Subset's: finishes the samples
        self.device = device
        self.collate = collate

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for samples in self.loader:
            yield self.collate(finish_batch(self.dataset, samples, self.device))

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)  # num_workers, sampler, ...


def data_loader(dataset: Any, device: torch.device, on_device: bool, **kwargs: Any) -> Any:
    """A DataLoader over ``dataset`` (``kwargs`` as DataLoader's); with ``on_device`` one whose workers only
    read, wrapped in ``DeviceDecoding`` (``dataset`` may be a ``Subset`` of a clip dataset)."""
    if not on_device:
        return DataLoader(dataset, **kwargs)
    if device.type != 'cuda':
        raise UserError(f'--decode_device cuda needs the run on a CUDA device, not {device.type}')
    defer(getattr(dataset, 'dataset', dataset))  # a Subset's
    collate = kwargs.pop('collate_fn')
    kwargs['pin_memory'] = False  # only bytes cross over; the clips are made on the device
    return DeviceDecoding(DataLoader(dataset, collate_fn=keep_samples, **kwargs), device, collate)
