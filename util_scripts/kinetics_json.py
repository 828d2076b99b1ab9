"""Kinetics annotation JSON from the official CSV files.

    python -m util_scripts.kinetics_json CSV_DIR N_CLASSES VIDEO_ROOT {jpg,hdf5,video} DST_JSON
                                         [--sort_labels]

Reads ``CSV_DIR/kinetics-<N>_{train,val,test}.csv`` (the test file is optional; the names
``kinetics_{train,val,test}.csv`` and ``{train,validate,test}.csv`` are accepted too), columns
``label,youtube_id,time_start,time_end[,split]`` (the test file may lack ``label``). Keys are
``<youtube_id>_<%06d start>_<%06d end>``. ``labels`` keeps the order in which the train CSV
first uses each class, as the original did, so the class indices of released models match;
``--sort_labels`` sorts them instead. Testing videos are looked up in ``VIDEO_ROOT/test``.
"""
import sys
from typing import List, Optional

from common import cli
from datasets.builders.kinetics import build
from datasets.formats import arguments


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = cli.parser('kinetics_json', __doc__)
    cli.add_paths(parser, csv_dir='folder with kinetics-<N>_{train,val,test}.csv (test optional)')
    parser.add_argument('n_classes', metavar='N_CLASSES', type=int,
                        help='400, 600 or 700: picks the CSV file names')
    cli.add_paths(parser, video_root=arguments.TEST_FOLDER)
    arguments.add_file_type(parser, positional=True)
    cli.add_paths(parser, dst_json='JSON file to write')
    parser.add_argument('--sort_labels', action='store_true',
                        help='sort labels alphabetically instead of the train CSV order')
    return cli.run(lambda: build(parser.parse_args(argv)))


if __name__ == '__main__':
    sys.exit(main())
