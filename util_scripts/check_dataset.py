"""Pre-flight scan of a dataset: every problem a training run would meet, before it starts.

    python -m util_scripts.check_dataset ANNOTATION VIDEO_ROOT --file_type jpg|hdf5|video
        [--dataset kinetics|activitynet|...] [--sample_duration 16] [--quick] [--n_jobs N]
        [--input_type rgb|flow|rgb_flow [--flow_path FLOW_ROOT]] [--duplicates [--duplicate_bits 24]]

Checks every video of every subset: missing on disk, empty (no frames on record), unreadable
(the file or folder cannot be opened), missing frames (fewer on disk than the annotation
says), bad frames (cannot be decoded), odd-size frames (another size than the rest of the
video: the loader replaces them like bad frames), too short (fewer frames than a clip: it will be
loop-padded), and the entries a run would drop: unknown subset, misspelled key (``annotation``
for ``annotations``), label not in ``labels``. With ``--input_type rgb_flow`` each RGB hdf5 file's
flow file (the same relative name under ``--flow_path``) is checked too: present, as many frames
and the same size as the RGB file (``flow mismatch``), and its frames decodable. ``--duplicates``
also hashes 4 frames of every training and validation video and names each validation video
whose frames match a training video's (``near duplicate``: the same clip on both sides of the
split, say in two codecs; ``datasets/duplicates.py``). Prints a table of problems and a summary
count; exit code 1 if any video has a problem that loses data or a near duplicate, 0 otherwise,
2 for a usage mistake
(an annotation built for another ``--file_type`` is one: the error says how to rebuild it).
"""
import argparse
import sys
from pathlib import Path
from typing import List, Optional

from common import cli
from datasets.check import loses_data, print_report, scan
from datasets.formats.annotation_json import FILE_TYPES


def check(args: argparse.Namespace) -> int:
    """Scan, print the report; 1 if a problem loses data."""
    if not args.video_path.is_dir():
        return cli.fail(f'{args.video_path}: video root not found')
    if args.input_type == 'rgb_flow' and (args.file_type != 'hdf5' or args.flow_path is None):
        return cli.fail('--input_type rgb_flow checks hdf5 RGB files and their flow files: give --file_type hdf5 '
                        'and --flow_path FLOW_ROOT')
    if args.flow_path is not None and args.input_type != 'rgb_flow':
        return cli.fail('--flow_path is only read with --input_type rgb_flow')
    if args.flow_path is not None and not args.flow_path.is_dir():
        return cli.fail(f'{args.flow_path}: flow root not found')
    problems, listed = scan(args.annotation_path, args.video_path, args.file_type, args.dataset,
                            args.sample_duration, args.quick, args.n_jobs, args.input_type, args.flow_path,
                            args.duplicate_bits if args.duplicates else None)
    print_report(problems, listed)
    return 1 if loses_data(problems) else 0


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = cli.parser('check_dataset', __doc__)
    cli.add_paths(parser, annotation_path='annotation JSON', video_path='root of the videos')
    parser.add_argument('--file_type', default='jpg', choices=FILE_TYPES)
    parser.add_argument('--input_type', default='rgb', choices=['rgb', 'flow', 'rgb_flow'])
    parser.add_argument('--flow_path', type=Path, default=None,
                        help='--input_type rgb_flow: the root of the flow hdf5 files (same relative names)')
    parser.add_argument('--dataset', default='kinetics',
                        choices=['kinetics', 'activitynet', 'ucf101', 'hmdb51', 'mit', 'folder'])
    parser.add_argument('--sample_duration', default=16, type=int,
                        help='Frames per clip: shorter videos are reported (default: %(default)s)')
    parser.add_argument('--quick', action='store_true',
                        help='Decode only the first, middle and last frame of each video')
    parser.add_argument('--n_jobs', default=1, type=int, help='Worker processes (default: %(default)s)')
    parser.add_argument('--duplicates', action='store_true',
                        help='Also name validation videos whose frames match a training video (near duplicates)')
    parser.add_argument('--duplicate_bits', default=24, type=cli.int_in(0, 256),
                        help='Near duplicate: at most this many of the 256 hash bits differ (default: %(default)s)')
    return cli.run(lambda: check(parser.parse_args(argv)))


if __name__ == '__main__':
    sys.exit(main())
