"""Live sources, opened for one pass by ``video_files``' rules: standard input, URLs, V4L2 cameras, pipes.

``inference.py --live`` and ``--timeline`` read these front to back, once; everything else
reads files (``video_files.open_video``), which it may seek and read twice.
"""
import os
import stat

import av

from datasets.formats.video_files import open_video, opened

def is_url(source: str) -> bool:
    """Whether ``source`` names a network stream FFmpeg opens (``rtsp://``, ``http://``, ``udp://``, ...)."""
    scheme, sep, _ = source.partition('://')
    return bool(sep) and scheme.replace('+', '').isalnum()


# a live source starts producing at once: probe 64 KB / 1 s of it, not FFmpeg's 5 MB / 5 s
LIVE_PROBE = {'probesize': '65536', 'analyzeduration': '1000000'}


def is_stream(source: str) -> bool:
    """Whether ``source`` can be read only once, front to back: standard input, a URL, a pipe or a device."""
    if source == '-' or is_url(source):
        return True
    try:
        return not stat.S_ISREG(os.stat(source).st_mode)
    except OSError:
        return False


def open_stream(source: str, timeout: float = 10.0) -> 'av.container.InputContainer':
    """A live source opened for one pass: ``-`` (standard input), a URL, a V4L2 capture device (``/dev/video0``),
    a named pipe, or a file; a network or pipe read that waits more than ``timeout`` seconds fails."""
    if source == '-' or is_url(source):  # FFmpeg reads the pipe itself: what has arrived, not a whole buffer
        return opened(av.open('pipe:0' if source == '-' else source, metadata_errors='ignore',
                               timeout=(timeout, timeout), options=LIVE_PROBE), None)
    mode = os.stat(source).st_mode
    if stat.S_ISREG(mode):
        return open_video(source)
    camera = stat.S_ISCHR(mode) and os.path.basename(source).startswith('video')  # /dev/video0: V4L2
    return opened(av.open(source, format='v4l2' if camera else None, metadata_errors='ignore',
                           timeout=(timeout, timeout), options=LIVE_PROBE), None)
