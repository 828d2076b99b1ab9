"""The views an inference run averages per video and what they cost, printed and recorded beside the results.

Costs are counted on the model (``models.summary.forward_gmacs``) and given in GFLOPs as the
published tables (SlowFast, X3D, mmaction2) count them: billions of multiply-adds per view,
times the views of a video.
"""
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch.nn as nn

from models.checkpoint import unwrap_model
from models.summary import forward_gmacs
from preprocessing import INPUT_CHANNELS, VIEW_FIELDS, Preprocessing, protocol_text, spatial_views, view_size


def first_frame_size(data: Any) -> Tuple[int, int]:
    """(h, w) of the first frame of a dataset's first video (what ``nocrop`` views are scaled from)."""
    record = data.records[0]
    frames, _ = data.loader(record.path, [record.frames[0]])
    return tuple(frames.shape[-2:])  # type: ignore[return-value]


def view_cost(model: nn.Module, prep: Preprocessing, stride: Optional[int], clips_per_video: Sequence[int],
              frame_hw: Optional[Tuple[int, int]] = None, seconds: Optional[float] = None) -> Dict[str, Any]:
    """The protocol, the views per video (mean over the videos) and GFLOPs per view and per video.

    ``frame_hw`` (a video's frame size) is needed only for ``nocrop``, whose views are whole frames;
    ``seconds``, the wall time of the pass, is recorded as given.
    """
    h, w = view_size(prep, *(frame_hw or (prep.sample_size, prep.sample_size)))
    channels = INPUT_CHANNELS[prep.input_type]
    gflops = forward_gmacs(unwrap_model(model), (channels, prep.sample_duration, h, w))
    per_clip = len(spatial_views(prep))
    views = per_clip * sum(clips_per_video) / max(1, len(clips_per_video))
    return {'protocol': protocol_text(prep, stride), **{k: getattr(prep, k) for k in VIEW_FIELDS},
            'inference_stride': None if prep.inference_clips else stride, 'spatial_views': spatial_views(prep),
            'view_shape': [channels, prep.sample_duration, h, w], 'videos': len(clips_per_video),
            'views_per_video': views, 'gflops_per_view': gflops, 'gflops_per_video': gflops * views,
            'seconds': None if seconds is None else round(seconds, 2)}


def cost_text(cost: Mapping[str, Any]) -> str:
    """One line: 'views: 10 clips x 3 crops (short side 56): 30 per video, 0.05 GFLOPs per view, 1.5 per video'."""
    took = '' if cost.get('seconds') is None else f"; {cost['seconds']:.1f} s for {cost['videos']} videos"
    return (f"views: {cost['protocol']}: {cost['views_per_video']:.4g} per video, {cost['gflops_per_view']:.4g} "
            f"GFLOPs per view, {cost['gflops_per_video']:.4g} GFLOPs per video{took}")


def summary_path(results: Path) -> Path:
    """Where the views, the cost and the metrics of a results JSON are recorded: ``<stem>_views.json`` beside it."""
    return results.with_name(f'{results.stem}_views.json')
