"""RGB and optical flow of the same frames as one clip: ``--input_type rgb_flow``.

A clip is one uint8 T x 5 x H x W tensor (C x T x H x W after the dataset's transpose): RGB
from the ``video`` dataset of an HDF5 file under ``--video_path`` and flow u, v from the
``video_u``/``video_v`` datasets of the file of the same relative name under ``--flow_path``
(``util_scripts.generate_flow_hdf5`` writes one flow frame per RGB frame, with the RGB file's
name), at the same frame indices. Being one tensor, the clip goes through the usual
transforms (one crop, one resize, one flip for all five channels; a flip also reverses u,
``spatial_transforms.hflip``), batches, device normalisation (5 means and stds), checkpoints
and export unchanged. A frame that cannot be read in either file is one bad 5-channel frame:
both halves are replaced from the same neighbour (counted once), so RGB and flow never fall
out of step. A flow file that is missing, or whose frame count or frame size
differs from its RGB file's, is a data fault: the video leaves the batch with a one-line
warning naming both files, and is counted with the other failed videos.
"""
from argparse import Namespace
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from datasets.decode import VideoReadError, assemble
from datasets.frame_sizes import majority_size
from datasets.loaders import Hdf5Loader
from models.factory import TWO_STREAM_MODELS

RGB_DATASET = 'video'
FLOW_DATASETS = ('video_u', 'video_v')
FLOW_MEAN, FLOW_STD = 0.5, 0.5  # of the stored [0, 1] values: zero flow (128) -> 0, the clipping bound -> +-1


def with_flow_mean_std(mean: Sequence[float], std: Sequence[float], value_scale: float = 1,
                       no_mean_norm: bool = False, no_std_norm: bool = False) -> Tuple[List[float], List[float]]:
    """The RGB ``mean``/``std`` followed by the flow channels' (``--no_mean_norm``/``--no_std_norm`` respected)."""
    flow_mean = 0.0 if no_mean_norm else FLOW_MEAN * value_scale
    flow_std = 1.0 if no_std_norm else FLOW_STD * value_scale
    return list(mean)[:3] + [flow_mean] * 2, list(std)[:3] + [flow_std] * 2


def check_rgb_flow_options(opt: Namespace) -> Optional[str]:
    """Why the options cannot give or take RGB + flow clips (None: they can)."""
    paired = opt.input_type == 'rgb_flow'
    if getattr(opt, 'flow_path', None) and not paired:
        return '--flow_path is only read with --input_type rgb_flow'
    if opt.model in TWO_STREAM_MODELS and not paired:
        return f'--model {opt.model} takes RGB + flow clips: add --input_type rgb_flow --flow_path FLOW_ROOT'
    if not paired:
        return None
    if opt.file_type != 'hdf5':
        return '--input_type rgb_flow needs --file_type hdf5 (RGB and flow hdf5 files of the same names)'
    if not getattr(opt, 'flow_path', None):
        return '--input_type rgb_flow needs --flow_path: the root of the flow hdf5 files (generate_flow_hdf5)'
    if opt.video_path and len(opt.flow_path) not in (1, len(opt.video_path)):
        return (f'{len(opt.video_path)} video paths but {len(opt.flow_path)} flow paths: give one flow path '
                'per video path, or one for all')
    if getattr(opt, 'pretext', ''):
        return '--pretext takes RGB clips, not --input_type rgb_flow'
    if opt.model in TWO_STREAM_MODELS and opt.sample_duration < opt.flow_frames:
        return (f'--sample_duration {opt.sample_duration} is shorter than the {opt.flow_frames} flow frames '
                f'--model {opt.model} stacks (--flow_frames)')
    return None


def root_pairs(video_paths: Sequence[Path], flow_paths: Sequence[Path]) -> List[Tuple[Path, Path]]:
    """(RGB root, flow root) pairs: one flow root per video root, or one for all."""
    videos, flows = [Path(p) for p in video_paths], [Path(p) for p in flow_paths]
    if len(flows) == 1:
        flows = flows * len(videos)
    if len(flows) != len(videos):
        raise ValueError(f'{len(videos)} video paths but {len(flows)} flow paths')
    return list(zip(videos, flows))


class PairedLoader:
    """``(path, indices)`` -> (T x 5 x H x W uint8 RGB + flow clip, frames replaced), as the other loaders."""

    def __init__(self, roots: Sequence[Tuple[Path, Path]]):
        # the deepest RGB root first, should one root hold another
        self.roots = sorted(((Path(r), Path(f)) for r, f in roots), key=lambda p: len(p[0].parts), reverse=True)
        self.rgb = Hdf5Loader((RGB_DATASET,))
        self.flow = Hdf5Loader(FLOW_DATASETS)
        self.checked: Dict[Path, Path] = {}  # RGB files whose flow file was found to match

    def flow_file(self, path: Path) -> Path:
        """The flow file of the RGB file ``path``: the same relative name under the paired flow root."""
        for rgb_root, flow_root in self.roots:
            try:
                return flow_root / Path(path).relative_to(rgb_root)
            except ValueError:
                continue
        raise VideoReadError(f'{path}: not under any --video_path root, so it has no --flow_path file')

    def check_pair(self, path: Path, flow: Path) -> None:
        """Raise ``VideoReadError`` unless ``flow`` exists and has as many frames as ``path`` (checked once per file)."""
        if self.checked.get(path) == flow:
            return
        import h5py
        if not flow.is_file():
            raise VideoReadError(f'{flow}: flow file of {path} not found')
        try:
            with h5py.File(path, 'r') as h5:
                n_rgb = len(h5[RGB_DATASET]) if RGB_DATASET in h5 else None
            with h5py.File(flow, 'r') as h5:
                n_flow = [len(h5[name]) if name in h5 else None for name in FLOW_DATASETS]
        except (OSError, RuntimeError, ValueError):
            return  # unreadable: the loaders below say which file and why
        if n_rgb is None or None in n_flow:
            return  # a missing dataset: the loaders below name it
        if any(n != n_rgb for n in n_flow):
            raise VideoReadError(f"{flow}: {'/'.join(map(str, sorted(set(n_flow))))} flow frames but {path} has "
                                 f'{n_rgb}; make the flow with the RGB conversion\'s --size and --fps')
        self.checked[path] = flow

    def __call__(self, path: Path, indices: Sequence[int]) -> Tuple[torch.Tensor, int]:
        import h5py
        flow_path = self.flow_file(path)
        self.check_pair(path, flow_path)
        wanted = list(dict.fromkeys(indices))
        files = {}
        try:
            for file, loader in ((path, self.rgb), (flow_path, self.flow)):
                files[file] = h5 = h5py.File(file, 'r')
                missing = [n for n in loader.datasets if n not in h5]
                if missing:
                    raise VideoReadError(f"{file}: no dataset {', '.join(missing)} in the file")
            rgb_h5, flow_h5 = files[path], files[flow_path]
            rgb, flow = self.rgb.frames(rgb_h5, wanted), self.flow.frames(flow_h5, wanted)
            self._check_sizes(path, flow_path, rgb, flow)
            # a frame is good only where both its RGB and its flow are: a replaced frame takes both
            # from the same neighbour, so the streams never fall out of step
            both = {i: _joined(rgb[i], flow[i]) for i in wanted}
            return assemble(indices, both, lambda i: _joined(self.rgb._read(rgb_h5, i), self.flow._read(flow_h5, i)),
                            f'{path} (with {flow_path})', lambda: self.rgb.video_size(rgb_h5))
        except VideoReadError:
            raise
        except (OSError, RuntimeError, ValueError) as e:  # missing, truncated or corrupt file
            raise VideoReadError(f'{file}: unreadable hdf5 ({str(e).splitlines()[0]})') from e
        finally:
            for h5 in files.values():
                h5.close()

    @staticmethod
    def _check_sizes(path: Path, flow_path: Path, rgb: Dict[int, Optional[torch.Tensor]],
                     flow: Dict[int, Optional[torch.Tensor]]) -> None:
        """Raise ``VideoReadError`` when the clip's RGB and flow frames have different majority sizes."""
        sizes = [majority_size(tuple(f.shape[-2:]) for f in frames.values() if f is not None) for frames in (rgb, flow)]
        if None not in sizes and sizes[0] != sizes[1]:
            (h, w), (fh, fw) = sizes
            raise VideoReadError(f"{flow_path}: flow frames of {fw}x{fh} but {path} has {w}x{h}; make the flow "
                                 "with the RGB conversion's --size")


def _joined(rgb: Optional[torch.Tensor], flow: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """One 5-channel frame, or None unless both halves were read at one size."""
    if rgb is None or flow is None or rgb.shape[-2:] != flow.shape[-2:]:
        return None
    return torch.cat([rgb, flow])


def paired_loader(opt: Namespace) -> PairedLoader:
    """The RGB + flow loader of the options' ``--video_path`` and ``--flow_path`` roots."""
    return PairedLoader(root_pairs(opt.video_path, opt.flow_path))
