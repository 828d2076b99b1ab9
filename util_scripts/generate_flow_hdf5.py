"""Compute dense optical flow of videos into one HDF5 file each, as greyscale JPEGs.

    python -m util_scripts.generate_flow_hdf5 SRC DST DATASET [--n_jobs N] [--size 240] [--fps F]
        [--method tvl1|dis|farneback] [--bound 20] [--tvl1_warps 5 ...]

Same inputs, layout and behaviour as generate_video_hdf5: ``SRC/<class>/<video>.<ext>`` ->
``DST/<class>/<stem>.hdf5`` (activitynet: ``DST/<stem>.hdf5``), frames decoded by PyAV and
scaled to the short side ``--size`` (use the --size and --fps of the RGB conversion), temp file
then rename, finished files skipped on rerun, a summary with every failed video and warning,
exit code 1 if any failed. Point DST at another folder than the RGB files: the names are the
same, so one annotation JSON serves both streams.

The file holds ``video_u`` and ``video_v``: one greyscale JPEG per frame and direction, the
flow clipped to [-bound, bound] pixels and mapped to 0..255 (zero flow is 128); see
``conversion/flow.py`` for the exact encoding.

Methods: ``tvl1`` (default) is OpenCV's Dual TV-L1 (opencv-contrib ``cv2.optflow``), the flow
of the two-stream and I3D papers; its options default to OpenCV's own values, which is the
usual quality. It is slow on a CPU (see --help): fewer --tvl1_warps, --tvl1_scales or
iterations, or a larger --tvl1_epsilon make it faster and the flow coarser. ``dis`` (DIS,
preset medium) and ``farneback`` are much faster and less accurate. With a pool of processes
each uses one OpenCV thread; with --n_jobs 1 OpenCV uses all cores.
"""
import functools
import sys
from typing import List, Optional

from common.cli import positive_int
from conversion.flow import DIS_PRESETS, METHODS, FlowParams, write_flow_hdf5
from common.processes import available_cpus
from util_scripts.video_conversion import add_fps_argument, base_parser, convert, positive_float


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = base_parser('generate_flow_hdf5', __doc__)
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
    return convert(args, '.hdf5', writer, n_jobs)


if __name__ == '__main__':
    sys.exit(main())
