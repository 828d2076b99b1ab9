"""Shared pieces of the annotation builder tests: fake frame folders, hdf5 files, a tiny avi."""
import json
from pathlib import Path

import h5py
import numpy as np
import pytest


def make_frames(folder: Path, n: int) -> Path:
    """A fake frame folder: n empty image_%05d.jpg files and two files that are not frames."""
    folder.mkdir(parents=True)
    for i in range(1, n + 1):
        (folder / f'image_{i:05d}.jpg').touch()
    (folder / 'flow_x_00001.jpg').touch()
    (folder / 'image_00001.png').touch()
    return folder


def make_hdf5(path: Path, n: int) -> Path:
    """An hdf5 video: a vlen uint8 'video' dataset of n (fake) JPEG byte strings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, 'w') as f:
        data = f.create_dataset('video', (n,), dtype=h5py.vlen_dtype(np.dtype('uint8')))
        for i in range(n):
            data[i] = np.frombuffer(b'\xff\xd8jpeg' + bytes([i]), dtype=np.uint8)
    return path


@pytest.fixture(scope='module')
def avi(tmp_path_factory) -> bytes:
    """Bytes of an 8-frame 32x32 mpeg4 .avi at 25 fps."""
    av = pytest.importorskip('av')
    path = tmp_path_factory.mktemp('video') / 'clip.avi'
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('mpeg4', rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, 'yuv420p'
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 30, np.uint8), 'rgb24')
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def one_line_error(capsys, *names: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err, err
    for name in names:
        assert name in err, err
    return err


def leftovers(folder: Path) -> list:
    return [p.name for p in folder.iterdir() if p.name.endswith('.tmp')]
