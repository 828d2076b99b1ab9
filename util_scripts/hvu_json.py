"""Multi-label annotation JSON for HVU (Holistic Video Understanding) from its CSV files.

    python -m util_scripts.hvu_json CSV_DIR VIDEO_ROOT {jpg,hdf5,video} DST_JSON
                                    [--categories action scene ...] [--min_videos N]

Reads the training and validation CSVs of ``CSV_DIR`` (``HVU_Train_*.csv`` and
``HVU_Val_*.csv``, or ``train.csv`` and ``val.csv``) with columns
``Tags,youtube_id,time_start,time_end``, where ``Tags`` joins a video's tags with ``|``.
Keys are ``<youtube_id>_<%06d start>_<%06d end>`` as for Kinetics, and each entry's
``label`` is the list of its tags. Videos are looked up directly in ``VIDEO_ROOT`` (HVU
has no class folders). ``--categories`` keeps the tags of those categories only, read from
``HVU_Tags_Categories_*.csv`` (columns ``Tag,Category``) in ``CSV_DIR``; ``--min_videos``
drops tags with fewer training videos. Labels are sorted. Train with ``--multilabel``.
"""
import sys
from typing import List, Optional

from common import cli
from datasets.builders.hvu import build
from datasets.formats import arguments


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = cli.parser('hvu_json', __doc__)
    cli.add_paths(parser, csv_dir='folder with the HVU CSV files',
                  video_root='videos as VIDEO_ROOT/<id>[.hdf5|.<ext>]')
    arguments.add_file_type(parser, positional=True)
    cli.add_paths(parser, dst_json='JSON file to write')
    parser.add_argument('--categories', nargs='+', default=None,
                        help='keep only tags of these categories (action, scene, object, event, attribute, concept)')
    parser.add_argument('--min_videos', type=int, default=1, help='drop tags with fewer training videos')
    return cli.run(lambda: build(parser.parse_args(argv)))


if __name__ == '__main__':
    sys.exit(main())
