"""A corpus of tiny videos in every container and codec the installed PyAV wheel can write.

Each case is a file that real datasets hold in some form: MPEG-1/2 program and transport
streams and elementary streams, H.264 with B-frames and open GOPs, a transport stream cut in
the middle of a GOP, MPEG-4 Part 2, VP8/VP9, HEVC, AV1, a variable-frame-rate file and files
with metadata that is not UTF-8. ``build_corpus`` writes those the wheel can encode and
names the others with the reason they were skipped.
"""
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import av
import numpy as np

from tests.video_fixtures import moving_frames

N_FRAMES = 36
HEIGHT, WIDTH = 48, 64
OPEN_GOP_X264 = {'g': '8', 'keyint_min': '8', 'bf': '3', 'crf': '18', 'sc_threshold': '0',
                 'x264-params': 'open-gop=1:b-pyramid=normal'}


@dataclass
class Case:
    """One file of the corpus: its name, codec, container format and encoder options."""

    name: str
    codec: str
    container: Optional[str] = None
    options: Dict[str, str] = field(default_factory=dict)
    pts: Optional[Sequence[int]] = None   # per-frame pts in ``time_base`` (None: 0, 1, 2 ...)
    time_base: Fraction = Fraction(1, 25)
    codec_time_base: Optional[Fraction] = None  # coarser than time_base: duplicate frame pts
    post: Optional[Callable[[Path], Path]] = None  # turns the encoded file into the case's file


def _has_encoder(codec: str) -> bool:
    try:
        av.codec.Codec(codec, 'w')
        return True
    except Exception:  # noqa: BLE001 - PyAV raises several types for an absent codec
        return False


def encode(path: Path, case: Case, frames: Sequence[np.ndarray]) -> Path:
    """Encode ``frames`` as the case says (pts may be irregular: variable frame rate)."""
    rate = Fraction(1) / case.time_base if case.pts is None else Fraction(25)
    with av.open(str(path), 'w', format=case.container) as out:
        stream = out.add_stream(case.codec, rate=rate, options=dict(case.options))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = 'yuvj420p' if case.codec == 'mjpeg' else 'yuv420p'
        stream.time_base = case.time_base
        stream.codec_context.time_base = case.codec_time_base or case.time_base
        if case.name in TITLED:
            out.metadata['title'] = 'Cafe-XX'
        if case.codec not in ('libx264', 'libx265', 'libsvtav1', 'libvpx-vp9', 'libvpx'):
            stream.bit_rate = 2_000_000
        for i, frame in enumerate(frames):
            image = av.VideoFrame.from_ndarray(frame, format='rgb24')
            image.pts = i if case.pts is None else case.pts[i]
            image.time_base = case.time_base
            out.mux(stream.encode(image))
        out.mux(stream.encode())
    return path


def irregular_pts(n: int) -> List[int]:
    """Increasing pts in 1/1000 s with gaps of 20 to 97 ms: a variable-frame-rate phone clip."""
    steps = [20, 40, 33, 97, 25, 60]
    return [sum(steps[k % len(steps)] for k in range(i)) for i in range(n)]


def replace_bytes(path: Path, old: bytes, new: bytes) -> Path:
    """Patch a same-length byte string in the file (metadata text into Latin-1)."""
    assert len(old) == len(new)
    data = path.read_bytes()
    assert old in data, f'{old!r} not in {path}'
    path.write_bytes(data.replace(old, new))
    return path


def latin1_title(path: Path) -> Path:
    """The title 'Cafe-XX' becomes 'Café' with a Latin-1 é (0xE9), invalid as UTF-8."""
    return replace_bytes(path, b'Cafe-XX', b'Caf\xe9 ok')  # same length: 7 bytes


def cut_transport_stream(path: Path) -> Path:
    """Drop the start of a transport stream up to a packet boundary inside the second GOP."""
    data = path.read_bytes()
    packets = len(data) // 188
    cut = packets * 2 // 5
    # restart at a packet that starts a PES (payload_unit_start) so the demuxer resyncs there
    while cut < packets and not data[cut * 188 + 1] & 0x40:
        cut += 1
    path.write_bytes(data[cut * 188:])
    return path


CASES: Tuple[Case, ...] = (
    Case('mpeg1_ps.mpg', 'mpeg1video', 'mpeg', {'g': '12', 'bf': '2'}),
    Case('mpeg2_ps.mpg', 'mpeg2video', 'vob', {'g': '12', 'bf': '2'}),
    Case('mpeg2_dvd.vob', 'mpeg2video', 'vob', {'g': '9', 'bf': '2'}),
    Case('mpeg1_es.mpv', 'mpeg1video', 'mpeg1video', {'g': '12', 'bf': '2'}),
    Case('mpeg2_es.m2v', 'mpeg2video', 'mpeg2video', {'g': '12', 'bf': '2'}),
    Case('mpeg2.ts', 'mpeg2video', 'mpegts', {'g': '12', 'bf': '2'}),
    Case('h264_open_gop_mp4.mp4', 'libx264', 'mp4', OPEN_GOP_X264),
    Case('h264_open_gop_mkv.mkv', 'libx264', 'matroska', OPEN_GOP_X264),
    Case('h264_open_gop_ts.ts', 'libx264', 'mpegts', OPEN_GOP_X264),
    Case('h264_cut.ts', 'libx264', 'mpegts', OPEN_GOP_X264, post=cut_transport_stream),
    Case('mpeg2_cut.ts', 'mpeg2video', 'mpegts', {'g': '12', 'bf': '2'}, post=cut_transport_stream),
    Case('h264_vfr_mkv.mkv', 'libx264', 'matroska', OPEN_GOP_X264, pts=irregular_pts(N_FRAMES),
         time_base=Fraction(1, 1000)),
    Case('h264_odd_pts.mkv', 'libx264', 'matroska', OPEN_GOP_X264, pts=irregular_pts(N_FRAMES),
         time_base=Fraction(1, 1000), codec_time_base=Fraction(1, 25)),
    Case('h264_vfr_mp4.mp4', 'libx264', 'mp4', {'g': '6', 'bf': '2', 'crf': '18'}, pts=irregular_pts(N_FRAMES),
         time_base=Fraction(1, 1000)),
    Case('mpeg4_bframes_avi.avi', 'mpeg4', 'avi', {'g': '10', 'bf': '2'}),
    Case('mpeg4_bframes_mp4.mp4', 'mpeg4', 'mp4', {'g': '10', 'bf': '2'}),
    Case('mpeg4.mov', 'mpeg4', 'mov', {'g': '10'}),
    Case('msmpeg4.wmv', 'msmpeg4v2', 'asf', {'g': '10'}),
    Case('flv1.flv', 'flv', 'flv', {'g': '10'}),
    Case('mjpeg.avi', 'mjpeg', 'avi'),
    Case('vp8.webm', 'libvpx', 'webm', {'g': '10', 'auto-alt-ref': '1', 'lag-in-frames': '8'}),
    Case('vp9.webm', 'libvpx-vp9', 'webm', {'g': '10', 'auto-alt-ref': '1', 'lag-in-frames': '8',
                                              'deadline': 'realtime', 'cpu-used': '8'}),
    Case('hevc_bframes.mkv', 'libx265', 'matroska', {'x265-params': 'keyint=8:bframes=3:log-level=none'}),
    Case('av1.mp4', 'libsvtav1', 'mp4', {'preset': '12', 'g': '8'}),
    Case('latin1_title_avi.avi', 'mpeg4', 'avi', {'g': '10', 'bf': '2'}, post=latin1_title),
    Case('latin1_title_mkv.mkv', 'libx264', 'matroska', OPEN_GOP_X264, post=latin1_title),
)
TITLED = {'latin1_title_avi.avi', 'latin1_title_mkv.mkv'}


def build_corpus(folder: Path, cases: Sequence[Case] = CASES) -> Tuple[Dict[str, Path], Dict[str, str]]:
    """Write the cases into ``folder``: ({name: path}, {name: why it was skipped})."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = moving_frames(N_FRAMES, HEIGHT, WIDTH)
    made, skipped = {}, {}
    for case in cases:
        if not _has_encoder(case.codec):
            skipped[case.name] = f'the PyAV wheel has no {case.codec} encoder'
            continue
        path = folder / case.name
        try:
            encode(path, case, frames)
        except (av.FFmpegError, ValueError) as e:
            skipped[case.name] = f'{case.codec} in {case.container} cannot be encoded here ({e})'
            continue
        made[case.name] = case.post(path) if case.post else path
    return made, skipped

