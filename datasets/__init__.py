"""Video datasets: the path of a clip from disk to a batch.

Submodules load on first use (PEP 562), so ``datasets.formats`` and ``datasets.builders``
can be imported without torch:

- ``formats``: the torch-free on-disk formats; ``builders``: the annotation builders' logic;
- ``annotations``: annotation JSON -> video records;
- ``decode``: JPEG bytes -> frames, a clip stacked with bad frames replaced;
- ``loaders``/``video_loader``: frames from JPG folders, HDF5 files and video files;
- ``video_dataset``/``cubic_puzzle``: samples and batches; ``samplers``: resumable order;
- ``build``: datasets and transforms from the options.
"""
import importlib
from typing import Any

_EXPORTS = {
    'AnnotationError': 'annotations', 'VideoList': 'annotations', 'VideoRecord': 'annotations',
    'load_video_list': 'annotations', 'RecordTable': 'records',
    'CubicPuzzleDataset': 'cubic_puzzle', 'collate_puzzles': 'cubic_puzzle',
    'Hdf5Loader': 'loaders', 'JpgLoader': 'loaders', 'VideoLoader': 'video_loader', 'VideoReadError': 'decode',
    'decode_image': 'decode',
    'EpochSampler': 'samplers', 'EpochBatches': 'samplers', 'sample_seed': 'samplers',
    'MultiClipDataset': 'video_dataset', 'VideoDataset': 'video_dataset', 'collate': 'video_dataset',
    'get_inference_data': 'build', 'get_loader': 'build', 'get_normalization': 'build',
    'get_pretext_data': 'build', 'epoch_sampler': 'build', 'rank_share': 'build', 'require_inputs': 'build', 'require_videos': 'build', 'check_class_count': 'build', 'get_training_data': 'build', 'get_validation_data': 'build',
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f'.{_EXPORTS[name]}', __name__), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
