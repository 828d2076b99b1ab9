"""A tree of tiny source videos (good, broken and odd ones) for the conversion tests.

Tiny videos (12-20 frames of 64x48 or 48x64) are made with PyAV; the ``src`` and ``jpg_run``
fixtures build them and convert them to jpgs once per test module that imports them.
"""
import contextlib
import io
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from util_scripts import generate_video_jpgs

REPO = Path(__file__).resolve().parents[1]
SIZE = 32  # 64x48 -> 43x32, 48x64 -> 32x43
LANDSCAPE, PORTRAIT = (43, 32), (32, 43)  # PIL (width, height)
VFR_GAPS_MS = [33, 66, 33, 100, 33, 33, 200, 33, 66, 33, 33]

# name -> (frames expected from generate_video_jpgs, PIL size of the frames)
GOOD = {
    'walk/h264.mp4': (12, LANDSCAPE),
    'walk/mpeg4.avi': (12, LANDSCAPE),
    'walk/vp9.webm': (12, PORTRAIT),
    'walk/h264.mkv.mkv': (12, LANDSCAPE),
    'run/vfr.mp4': (12, PORTRAIT),
    'run/badmeta.mp4': (12, LANDSCAPE),
    'run/midcorrupt.mp4': (6, LANDSCAPE),  # a broken packet at frame 7: 6 frames kept
}
BAD = ['run/empty.mp4', 'run/text.mp4', 'run/truncated.mp4', 'run/headeronly.webm',
       'run/audio.mkv']
IGNORED = ['run/notes.txt']  # no video extension: counted, not tried


# ----------------------------------------------------------------------------- making videos

def moving_frames(n, width, height):
    for i in range(n):
        a = np.zeros((height, width, 3), np.uint8)
        a[..., 0] = (np.arange(width)[None, :] * 4 + i * 12) % 256
        a[..., 1] = (np.arange(height)[:, None] * 5) % 256
        x = (i * 3) % (width - 8)
        a[4:12, x:x + 8, 2] = 255
        yield a


def make_video(path, n=12, width=64, height=48, codec='libx264', fmt=None, rate=10,
               pts_ms=None, title=None, rotation=None, options=None, frames=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), 'w', format=fmt) as out:
        if title:
            out.metadata['title'] = title
        stream = out.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height = width, height
        stream.pix_fmt = 'yuv420p'
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, array in enumerate(frames if frames is not None else
                                  moving_frames(n, width, height)):
            frame = av.VideoFrame.from_ndarray(array, format='rgb24')
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def packet_positions(path):
    with av.open(str(path)) as c:
        return [p.pos for p in c.demux(video=0) if p.size]


def make_tree(root):
    make_video(root / 'walk/h264.mp4')
    make_video(root / 'walk/mpeg4.avi', codec='mpeg4')
    make_video(root / 'walk/vp9.webm', width=48, height=64, codec='libvpx-vp9')
    make_video(root / 'walk/h264.mkv.mkv', fmt='matroska')
    make_video(root / 'run/vfr.mp4', width=48, height=64, pts_ms=np.cumsum([0] + VFR_GAPS_MS))
    # metadata that is not UTF-8: PyAV writes str only, so patch the bytes of the written tag
    path = make_video(root / 'run/badmeta.mp4', title='QQQQQQQQQQQQ')
    data = path.read_bytes()
    assert data.count(b'QQQQQQQQQQQQ') == 1
    path.write_bytes(data.replace(b'QQQQQQQQQQQQ', b'\xff\xfe\xc3(Q\x80QQQQQQ'))
    # H.264 in mp4 (no B-frames): an impossible NAL size in packet 7 stops the decoder there
    path = make_video(root / 'run/midcorrupt.mp4', options={'bf': '0'})
    data = bytearray(path.read_bytes())
    pos = packet_positions(path)[6]
    data[pos:pos + 4] = b'\x7f\xff\xff\xff'
    path.write_bytes(bytes(data))
    (root / 'run/empty.mp4').write_bytes(b'')
    (root / 'run/notes.txt').write_text('FFmpeg reads text as ANSI art.\n' * 100)
    (root / 'run/text.mp4').write_text('FFmpeg reads text as ANSI art.\n' * 100)
    data = (root / 'walk/h264.mp4').read_bytes()
    (root / 'run/truncated.mp4').write_bytes(data[:len(data) // 2])
    webm = root / 'walk/vp9.webm'
    (root / 'run/headeronly.webm').write_bytes(webm.read_bytes()[:packet_positions(webm)[0]])
    with av.open(str(root / 'run/audio.mkv'), 'w') as out:
        stream = out.add_stream('pcm_s16le', rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format='s16',
                                           layout='mono')
        frame.sample_rate = 8000
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            out.mux(packet)


def run_main(module, argv):
    """Run a script's main in-process; return (exit code, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = module.main([str(a) for a in argv])
    return rc, out.getvalue()


def copy_videos(src_root, names, dst_root):
    for name in names:
        (dst_root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src_root / name, dst_root / name)
    return dst_root


def frame_dir(root, name):
    return root / Path(name).parent / Path(name).stem


def jpg_names(n):
    return [f'image_{i:05d}.jpg' for i in range(1, n + 1)]


def temps_left(root):
    return [p for p in root.rglob('*') if '.tmp-' in p.name]


@pytest.fixture(scope='module')
def src(tmp_path_factory):
    root = tmp_path_factory.mktemp('videos')
    make_tree(root)
    return root


@pytest.fixture(scope='module')
def jpg_run(src, tmp_path_factory):
    dst = tmp_path_factory.mktemp('jpgs')
    rc, out = run_main(generate_video_jpgs, [src, dst, 'kinetics', '--size', SIZE,
                                             '--n_jobs', 1])
    return rc, out, dst
