"""The arguments every annotation builder shares: the video root's help text and the file type."""
import argparse
from typing import Dict, List, Optional

from common.cli import add_paths, parser
from datasets.formats.annotation_json import FILE_TYPES

CLASS_FOLDERS = 'videos as VIDEO_ROOT/<class>/<id>[.hdf5|.<ext>]'  # help of a video root
TEST_FOLDER = CLASS_FOLDERS + '; testing in test/'


def add_file_type(parser: argparse.ArgumentParser, positional: bool = False) -> None:
    """The video file type: a positional ``FILE_TYPE`` (the original's) or ``--file_type`` (default jpg)."""
    if positional:
        parser.add_argument('file_type', metavar='FILE_TYPE', choices=FILE_TYPES,
                            help='jpg (frame folders), hdf5 or video (video files)')
    else:
        parser.add_argument('--file_type', choices=FILE_TYPES, default='jpg',
                            help='jpg frame folders, hdf5 files or video files (default: jpg)')


def parse_paths(tool: str, doc: str, paths: Dict[str, str],
                argv: Optional[List[str]]) -> argparse.Namespace:
    """Parse the usual builder arguments: positional ``paths`` (name -> help, in order), ``--file_type``."""
    parser_ = parser(tool, doc)
    add_paths(parser_, **paths)
    add_file_type(parser_)
    return parser_.parse_args(argv)
