"""Dense optical flow of a video into one HDF5 file, as greyscale JPEGs (``video_u``/``video_v``).

The file holds datasets ``video_u`` and ``video_v`` (horizontal and vertical flow), each of
shape (n_frames,) and dtype vlen uint8 like ``video``; element i is a greyscale JPEG (quality
90) of the flow from frame i to frame i+1, computed on the greyscale frames at the converted
size. The last frame repeats the last flow (a one-frame video gets zero flow), so there are as
many flow frames as RGB frames. Each component, in pixels, is clipped to [-bound, bound] and
mapped linearly to 0..255: value = round((flow + bound) * 255 / (2 * bound)), zero flow is 128;
``decode_flow`` inverts it. The attributes ``method``, ``bound`` and ``params`` (JSON) record
how the flow was made.

Methods: ``tvl1`` is OpenCV's Dual TV-L1 (opencv-contrib ``cv2.optflow``), the flow of the
two-stream and I3D papers, with OpenCV's own defaults; ``dis`` (DIS) and ``farneback`` are
much faster and less accurate.
"""
import json
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, Optional, Tuple

import cv2
import numpy as np

from conversion.frames import FrameReader, encode_jpeg
from conversion.writers import JpegSeries, open_hdf5_output

METHODS = ('tvl1', 'dis', 'farneback')
DIS_PRESETS = {'ultrafast': cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
               'fast': cv2.DISOPTICAL_FLOW_PRESET_FAST,
               'medium': cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}
DATASETS = ('video_u', 'video_v')

# (previous grey frame, next grey frame) -> H x W x 2 float32 flow in pixels (u, v)
Estimator = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class FlowParams:
    """How the flow is computed; OpenCV's defaults for TV-L1."""
    method: str = 'tvl1'
    bound: float = 20.0
    tvl1_scales: int = 5
    tvl1_warps: int = 5
    tvl1_epsilon: float = 0.01
    tvl1_inner_iterations: int = 30
    tvl1_outer_iterations: int = 10
    tvl1_scale_step: float = 0.8
    dis_preset: str = 'medium'

    def used(self) -> Dict[str, object]:
        """The parameters that apply to the chosen method (stored in the file)."""
        return {k: v for k, v in asdict(self).items()
                if k in ('method', 'bound') or k.startswith(self.method + '_')}


# ----------------------------------------------------------------------------- flow

def make_estimator(params: FlowParams) -> Estimator:
    """A function computing the flow between two greyscale uint8 frames with ``params``."""
    if params.method == 'tvl1':
        tvl1 = cv2.optflow.DualTVL1OpticalFlow_create()
        tvl1.setScalesNumber(params.tvl1_scales)
        tvl1.setWarpingsNumber(params.tvl1_warps)
        tvl1.setEpsilon(params.tvl1_epsilon)
        tvl1.setInnerIterations(params.tvl1_inner_iterations)
        tvl1.setOuterIterations(params.tvl1_outer_iterations)
        tvl1.setScaleStep(params.tvl1_scale_step)
        return lambda previous, current: tvl1.calc(previous, current, None)
    if params.method == 'dis':
        dis = cv2.DISOpticalFlow_create(DIS_PRESETS[params.dis_preset])
        return lambda previous, current: dis.calc(previous, current, None)
    if params.method == 'farneback':
        return lambda previous, current: cv2.calcOpticalFlowFarneback(
            previous, current, None, 0.5, 3, 15, 3, 5, 1.2, 0)
    raise ValueError(f'unknown flow method {params.method!r}: choose one of {", ".join(METHODS)}')


def to_grey(frame: np.ndarray) -> np.ndarray:
    """An RGB uint8 frame as a greyscale uint8 frame."""
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def flow_frames(frames: Iterable[np.ndarray], estimate: Estimator) -> Iterator[np.ndarray]:
    """One flow per RGB frame: frame i to i+1, the last flow repeated (zero for one frame)."""
    previous: Optional[np.ndarray] = None
    flow: Optional[np.ndarray] = None
    for frame in frames:
        grey = to_grey(frame)
        if previous is not None:
            flow = estimate(previous, grey)
            yield flow
        previous = grey
    if previous is not None:
        yield flow if flow is not None else np.zeros(previous.shape + (2,), np.float32)


def quantize(component: np.ndarray, bound: float) -> np.ndarray:
    """Flow in pixels, clipped to [-bound, bound], as uint8 0..255 (zero flow is 128)."""
    scaled = (np.clip(component, -bound, bound) + bound) * (255.0 / (2 * bound))
    return np.floor(scaled + 0.5).astype(np.uint8)


def decode_flow(values: np.ndarray, bound: float) -> np.ndarray:
    """uint8 values of a stored flow image back to pixels (the inverse of ``quantize``)."""
    return values.astype(np.float32) * (2 * bound / 255.0) - bound


def encode_flow(flow: np.ndarray, bound: float) -> Tuple[bytes, bytes]:
    """The (u, v) greyscale JPEG bytes of one H x W x 2 flow."""
    return encode_jpeg(quantize(flow[..., 0], bound)), encode_jpeg(quantize(flow[..., 1], bound))


# ----------------------------------------------------------------------------- one video

def write_flow_hdf5(src: Path, tmp_file: Path, size: int, fps: Fraction, params: FlowParams,
                    threads: int = -1) -> str:
    """Write the flow of every frame of ``src`` into 'video_u'/'video_v' of ``tmp_file``."""
    cv2.setNumThreads(threads)
    reader = FrameReader(src, size, fps)
    estimate = make_estimator(params)
    n = 0
    with open_hdf5_output(tmp_file) as f:
        series = [JpegSeries(f, name) for name in DATASETS]
        f.attrs['method'] = params.method
        f.attrs['bound'] = float(params.bound)
        f.attrs['params'] = json.dumps(params.used())
        for flow in flow_frames(reader, estimate):
            for target, jpeg in zip(series, encode_flow(flow, params.bound)):
                target.append(jpeg)
            n += 1
        for target in series:
            target.flush()
    if n == 1 and not reader.warning:
        return 'one frame only: stored zero flow'
    return reader.warning
