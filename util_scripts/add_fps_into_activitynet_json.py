"""Add each video's fps and frame count to the ActivityNet annotation JSON.

    python -m util_scripts.add_fps_into_activitynet_json VIDEO_DIR JSON_PATH [DST_JSON]

For every id of ``database`` it looks for ``VIDEO_DIR/v_<id>.<ext>`` (any video extension)
and the frame folder ``VIDEO_DIR/v_<id>``, and stores ``fps`` (the video stream's average
rate, read by PyAV) and ``n_frames`` (``image_*.jpg`` files of the frame folder when there is
one, else the video's packet count), so a loader needs no folder listing per annotation.
DST_JSON (default: JSON_PATH itself) is written atomically. Ids found nowhere are reported.
"""
import sys
from pathlib import Path
from typing import List, Optional

from common import cli
from datasets.builders.activitynet_fps import build


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = cli.parser('add_fps_into_activitynet_json', __doc__)
    cli.add_paths(parser, video_dir='folder with v_<id>.<ext> videos and/or v_<id> frame folders',
                  json_path='ActivityNet annotation JSON')
    parser.add_argument('dst_json', metavar='DST_JSON', type=Path, nargs='?', default=None,
                        help='where to write (default: overwrite JSON_PATH)')
    return cli.run(lambda: build(parser.parse_args(argv)))


if __name__ == '__main__':
    sys.exit(main())
