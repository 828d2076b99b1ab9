"""Compute dense optical flow of videos into one HDF5 file each, as greyscale JPEGs.

    python -m util_scripts.generate_flow_hdf5 SRC DST DATASET [--n_jobs N] [--size 240] [--fps F]
        [--method tvl1|dis|farneback] [--bound 20] [--tvl1_warps 5 ...]

Same inputs, layout and behaviour as generate_video_hdf5: ``SRC/<class>/<video>.<ext>`` ->
``DST/<class>/<stem>.hdf5`` (activitynet: ``DST/<stem>.hdf5``), frames decoded by PyAV and
scaled to the short side ``--size`` (use the --size and --fps of the RGB conversion), temp file
then rename, finished files skipped on rerun, a summary with every failed video and warning,
exit code 1 if any failed. Point DST at another folder than the RGB files: the names are the
same, so one annotation JSON serves both streams.

The file holds datasets ``video_u`` and ``video_v`` (horizontal and vertical flow), each of
shape (n_frames,) and dtype vlen uint8 like ``video``; element i is a greyscale JPEG (quality
90) of the flow from frame i to frame i+1, computed on the greyscale frames at the converted
size. The last frame repeats the last flow (a one-frame video gets zero flow), so there are as
many flow frames as RGB frames. Each component, in pixels, is clipped to [-bound, bound] and
mapped linearly to 0..255: value = round((flow + bound) * 255 / (2 * bound)), zero flow is 128;
``decode_flow`` inverts it. The attributes ``method``, ``bound`` and ``params`` (JSON) record
how the flow was made.

Methods: ``tvl1`` (default) is OpenCV's Dual TV-L1 (opencv-contrib ``cv2.optflow``), the flow
of the two-stream and I3D papers; its options default to OpenCV's own values, which is the
usual quality. It is slow on a CPU (see --help): fewer --tvl1_warps, --tvl1_scales or
iterations, or a larger --tvl1_epsilon make it faster and the flow coarser. ``dis`` (DIS,
preset medium) and ``farneback`` are much faster and less accurate. With a pool of processes
each uses one OpenCV thread; with --n_jobs 1 OpenCV uses all cores.
"""
import argparse
import functools
import json
import sys
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import cv2
import h5py
import numpy as np

from util_scripts.generate_video_hdf5 import JpegSeries
from util_scripts.video_conversion import (FrameReader, add_fps_argument, available_cpus, base_parser,
                                           encode_jpeg, positive_int, run_conversion)

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
    # locking=False: each process writes only its own temp file (as generate_video_hdf5)
    with h5py.File(tmp_file, 'w', locking=False) as f:
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


# ----------------------------------------------------------------------------- command line

def positive_float(text: str) -> float:
    """An argparse type for numbers above zero."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f'must be positive: {text}')
    return value


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = base_parser(__doc__.splitlines()[0])
    d = FlowParams()
    add_fps_argument(parser, '; use the value of the RGB conversion')
    parser.add_argument('--method', choices=METHODS, default=d.method,
                        help='tvl1: Dual TV-L1 (default, slow, the two-stream/I3D flow); '
                             'dis, farneback: much faster, coarser')
    parser.add_argument('--bound', type=positive_float, default=d.bound,
                        help='Flow in pixels is clipped to [-bound, bound] (default: %(default)s)')
    tvl1 = parser.add_argument_group(
        'TV-L1 (defaults: OpenCV\'s; lower values, or a larger epsilon, are faster and coarser)')
    tvl1.add_argument('--tvl1_scales', type=positive_int, default=d.tvl1_scales,
                      help='Pyramid levels (default: %(default)s)')
    tvl1.add_argument('--tvl1_warps', type=positive_int, default=d.tvl1_warps,
                      help='Warpings per level (default: %(default)s)')
    tvl1.add_argument('--tvl1_epsilon', type=positive_float, default=d.tvl1_epsilon,
                      help='Stopping threshold of the inner iterations (default: %(default)s)')
    tvl1.add_argument('--tvl1_inner_iterations', type=positive_int,
                      default=d.tvl1_inner_iterations, help='At most (default: %(default)s)')
    tvl1.add_argument('--tvl1_outer_iterations', type=positive_int,
                      default=d.tvl1_outer_iterations, help='At most (default: %(default)s)')
    tvl1.add_argument('--tvl1_scale_step', type=positive_float, default=d.tvl1_scale_step,
                      help='Pyramid scale step, below 1 (default: %(default)s)')
    parser.add_argument('--dis_preset', choices=tuple(DIS_PRESETS), default=d.dis_preset,
                        help='DIS speed/quality preset (default: %(default)s)')
    args = parser.parse_args(argv)
    if not args.tvl1_scale_step < 1:
        parser.error('--tvl1_scale_step must be below 1')
    params = FlowParams(args.method, args.bound, args.tvl1_scales, args.tvl1_warps,
                        args.tvl1_epsilon, args.tvl1_inner_iterations, args.tvl1_outer_iterations,
                        args.tvl1_scale_step, args.dis_preset)
    n_jobs = args.n_jobs if args.n_jobs and args.n_jobs > 0 else available_cpus()
    writer = functools.partial(write_flow_hdf5, size=args.size, fps=args.fps, params=params,
                               threads=-1 if n_jobs == 1 else 1)
    return run_conversion(args.src, args.dst, args.dataset, '.hdf5', writer, n_jobs)


if __name__ == '__main__':
    sys.exit(main())
