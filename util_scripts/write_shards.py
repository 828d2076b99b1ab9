"""Write a dataset's videos into tar shards, for clusters without a shared file system.

    python -m util_scripts.write_shards VIDEO_PATH ANNOTATION_PATH OUT_DIR [--file_type video|jpg|hdf5]
        [--dataset kinetics|...] [--subset training --subset validation] [--shard_mb 256] [--seed 0] [--n_jobs N]

Each video of each subset (default: every subset the annotation file has) becomes one sample of a
WebDataset tar shard ``OUT_DIR/<subset>-000000.tar``: its bytes as stored (the video file with its
frame table, or its JPEG frames from JPG folders or HDF5 files), id, labels, frame range and fps.
``OUT_DIR/<subset>.shards.json`` indexes them (counts, sizes, SHA-256, sample offsets). Shards are
written under temp names, read back and checked, then renamed; an interrupted run continues after
the last shard it closed. Videos that cannot be read are named, counted, listed in the index, and
make the exit code 1. Train from the shards with
``main.py --file_type shards --video_path OUT_DIR_OR_URL`` and the same annotation file
(docs/cluster.md).
"""
import sys
from pathlib import Path
from typing import List, Optional

from common import cli
from common.errors import UserError
from common.processes import available_cpus
from datasets.formats.annotation_json import FILE_TYPES, read_annotation_json


def write(args) -> int:
    """Write the shards of every subset asked for; print one summary line per subset; the exit code."""
    from datasets.annotations import load_video_list
    from datasets.shards.writer import write_subset
    if not args.annotation_path.is_file():
        raise UserError(f'{args.annotation_path}: no such annotation file')
    if not args.video_path.is_dir():
        raise UserError(f'{args.video_path}: video root not found')
    database = read_annotation_json(args.annotation_path).get('database', {})
    found = sorted({str(e.get('subset')) for e in database.values() if isinstance(e, dict)} - {'None'})
    subsets = args.subset or found
    failures = 0
    for subset in subsets:
        videos = load_video_list([args.annotation_path], [args.video_path], subset, args.file_type, args.dataset)
        if not len(videos.records) and not videos.missing and not videos.empty:
            raise UserError(f"{args.annotation_path}: no entry of subset {subset!r} (it has: {', '.join(found)})")
        index = write_subset(videos, args.out_dir, args.file_type, args.shard_mb, args.seed,
                             show_progress=not args.no_progress, n_jobs=args.n_jobs or available_cpus())
        failures += len(index['failed'])
        print(f"{subset}: {index['samples']} videos in {len(index['shards'])} shards "
              f"({sum(s['bytes'] for s in index['shards']) / 2**20:.1f} MB), {len(index['failed'])} failed "
              f"-> {args.out_dir / (subset + '.shards.json')}")
        for fault in index['failed'][:20]:
            print(f"  failed: {fault.get('id')}: {fault.get('reason')}")
    return 1 if failures else 0


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = cli.parser('write_shards', __doc__)
    parser.add_argument('video_path', type=Path, metavar='VIDEO_PATH', help='Root of the videos (as --video_path)')
    parser.add_argument('annotation_path', type=Path, metavar='ANNOTATION_PATH', help='Annotation JSON')
    parser.add_argument('out_dir', type=Path, metavar='OUT_DIR', help='Where the shards and indexes go')
    parser.add_argument('--file_type', default='video', choices=FILE_TYPES, help='How VIDEO_PATH stores videos')
    parser.add_argument('--dataset', default='kinetics', help='As main.py --dataset (activitynet: segments)')
    parser.add_argument('--subset', action='append', choices=['training', 'validation', 'testing'],
                        help='A subset to write (repeatable; default: every subset of the annotation file)')
    parser.add_argument('--shard_mb', type=cli.float_in(0, 1 << 20, open_lo=True), default=256.0,
                        help='Start a new shard once one holds this many MB (default 256)')
    parser.add_argument('--seed', type=cli.int_in(0, 2**31 - 1), default=0,
                        help='Seed of the order the videos are spread over the shards')
    parser.add_argument('--n_jobs', type=cli.int_in(0, 1024), default=0,
                        help='Processes reading the videos (default 0: the CPUs this process may use)')
    parser.add_argument('--no_progress', action='store_true', help='No progress lines')
    args = parser.parse_args(argv)
    from datasets.formats.shard_index import ShardIndexError
    return cli.run(lambda: write(args), errors=(ShardIndexError,))


if __name__ == '__main__':
    sys.exit(main())
