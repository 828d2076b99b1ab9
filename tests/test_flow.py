"""generate_flow_hdf5: optical flow into video_u/video_v, read by Hdf5Loader, trained on end to end.

Tiny 64x48 videos of a textured square moving 2 pixels per frame to the right or to the left
over a static background, made with PyAV once per module.
"""
import contextlib
import io
import json
from fractions import Fraction
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

import main as main_module
from datasets import Hdf5Loader
from conversion.flow import FlowParams, decode_flow, quantize, write_flow_hdf5
from tests.video_fixtures import write_video
from util_scripts import check_dataset, folder_json, generate_flow_hdf5, generate_video_hdf5
from datasets.formats.video_layout import count_hdf5_frames

N_FRAMES, H, W = 12, 48, 64
SIDE, Y0, STEP = 16, 16, 2          # the square: side, top row, pixels per frame
BOUND = 4                           # 2 px/frame -> 127.5 + 2 / 4 * 127.5 = 191 (or 64 leftwards)
VIDEOS = {'right/r0.mp4': (STEP, 0), 'right/r1.mp4': (STEP, 1),
          'left/l0.mp4': (-STEP, 2), 'left/l1.mp4': (-STEP, 3)}
TINY = ['--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25',
        '--sample_size', '32', '--sample_duration', '8', '--batch_size', '2', '--n_threads', '0',
        '--no_progress', '--n_val_samples', '1', '--learning_rate', '0.01']


def x_of(step: int, t: int) -> int:
    """Left column of the square at frame t."""
    return 8 + step * t if step > 0 else W - 8 - SIDE + step * t


def square_frames(step: int, seed: int, n: int = N_FRAMES):
    """RGB frames: a random-textured square moving ``step`` pixels per frame on a smooth background."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    background = (60 + 30 * np.sin(x / 5.0) * np.cos(y / 7.0)).astype(np.uint8)
    texture = rng.integers(150, 256, (SIDE // 2, SIDE // 2), dtype=np.uint8).repeat(2, 0).repeat(2, 1)
    frames = []
    for t in range(n):
        frame = background.copy()
        frame[Y0:Y0 + SIDE, x_of(step, t):x_of(step, t) + SIDE] = texture
        frames.append(np.repeat(frame[..., None], 3, -1))
    return frames


def run_quiet(module, argv):
    """Run a script's main in-process; return (exit code, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = module.main([str(a) for a in argv])
    return rc, out.getvalue()


@pytest.fixture(scope='module')
def src(tmp_path_factory):
    root = tmp_path_factory.mktemp('flow_src')
    for name, (step, seed) in VIDEOS.items():
        write_video(root / name, square_frames(step, seed))
    (root / 'right' / 'broken.mp4').write_text('not a video\n' * 50)
    return root


@pytest.fixture(scope='module')
def flow_run(src, tmp_path_factory):
    dst = tmp_path_factory.mktemp('flow')
    rc, out = run_quiet(generate_flow_hdf5, [src, dst, 'kinetics', '--size', H, '--n_jobs', 1,
                                             '--bound', BOUND])
    return rc, out, dst


def flow_path(dst: Path, name: str) -> Path:
    return dst / Path(name).with_suffix('.hdf5')


def test_flow_file_has_one_jpeg_per_rgb_frame_and_loads_as_two_channels(src, flow_run, tmp_path):
    _, _, dst = flow_run
    assert run_quiet(generate_video_hdf5, [src, tmp_path, 'kinetics', '--size', H, '--n_jobs', 1])[0] == 1
    for name in VIDEOS:
        path = flow_path(dst, name)
        with h5py.File(path, 'r') as f:
            assert set(f) == {'video_u', 'video_v'}
            assert f['video_u'].dtype == h5py.vlen_dtype(np.dtype('uint8'))
            assert len(f['video_u']) == len(f['video_v']) == N_FRAMES
            assert f.attrs['method'] == 'tvl1' and f.attrs['bound'] == BOUND
            assert json.loads(f.attrs['params'])['tvl1_warps'] == 5
            with Image.open(io.BytesIO(bytes(f['video_u'][0]))) as im:
                assert im.mode == 'L' and im.size == (W, H)
        # the RGB file of the same video has the same name and frame count
        assert count_hdf5_frames(flow_path(tmp_path, name)) == count_hdf5_frames(path) == N_FRAMES
        clip, bad = Hdf5Loader(('video_u', 'video_v'))(path, list(range(N_FRAMES)))
        assert clip.shape == (N_FRAMES, 2, H, W) and bad == 0


def test_flow_points_the_way_the_square_moves(flow_run):
    _, _, dst = flow_run
    for name, (step, _) in VIDEOS.items():
        clip, _ = Hdf5Loader(('video_u', 'video_v'))(flow_path(dst, name), list(range(N_FRAMES)))
        clip = clip.float()
        for t in range(N_FRAMES - 1):
            region = clip[t, :, Y0:Y0 + SIDE, x_of(step, t):x_of(step, t) + SIDE]
            u, v = region[0].mean().item(), region[1].mean().item()
            assert (u > 160) if step > 0 else (u < 96), (name, t, u)
            assert abs(v - 128) < 6, (name, t, v)
        assert torch.equal(clip[-1], clip[-2])  # the last frame repeats the last flow
        still = clip[:, :, Y0 + SIDE + 4:]  # below the square: static background
        assert abs(still.mean().item() - 128) < 3


def test_unreadable_video_is_counted_and_the_others_converted(flow_run):
    rc, out, dst = flow_run
    assert rc == 1
    lines = out.splitlines()
    assert lines[0] == 'converted 4, skipped 0 (already done), failed 1, warnings 0'
    assert any(line.startswith('FAILED  right/broken.mp4: ') for line in lines)
    assert not (dst / 'right' / 'broken.hdf5').exists()
    assert [p for p in dst.rglob('*') if '.tmp-' in p.name] == []


@pytest.mark.parametrize('method', ['dis', 'farneback'])
def test_fast_methods_in_a_pool_and_rerun_skips(src, tmp_path, method):
    argv = [src, tmp_path, 'kinetics', '--size', H, '--n_jobs', 2, '--bound', BOUND, '--method', method]
    rc, out = run_quiet(generate_flow_hdf5, argv)
    assert rc == 1 and out.startswith('converted 4, skipped 0')
    clip, _ = Hdf5Loader(('video_u', 'video_v'))(tmp_path / 'right' / 'r0.hdf5', [0])
    u = clip[0, 0, Y0:Y0 + SIDE, x_of(STEP, 0):x_of(STEP, 0) + SIDE].float().mean().item()
    assert u > 150
    with h5py.File(tmp_path / 'right' / 'r0.hdf5', 'r') as f:
        assert f.attrs['method'] == method
    assert run_quiet(generate_flow_hdf5, argv)[1].startswith('converted 0, skipped 4 (already done)')


def test_encoding_maps_zero_to_128_and_clips_at_the_bound():
    values = quantize(np.array([-30.0, -20.0, -10.0, 0.0, 10.0, 20.0, 25.0]), 20)
    assert values.tolist() == [0, 0, 64, 128, 191, 255, 255]
    flow = np.linspace(-20, 20, 101)
    back = decode_flow(quantize(flow, 20), 20)
    assert np.abs(back - flow).max() <= 20 / 255 + 1e-4  # half a step


def test_one_frame_video_gets_zero_flow_and_a_warning(tmp_path):
    src = write_video(tmp_path / 'v.mp4', square_frames(STEP, 0, n=1))
    params = FlowParams()
    warning = write_flow_hdf5(src, tmp_path / 'v.hdf5', H, Fraction(-1), params)
    assert 'one frame' in warning
    clip, _ = Hdf5Loader(('video_u', 'video_v'))(tmp_path / 'v.hdf5', [0])
    assert clip.shape == (1, 2, H, W) and bool((clip == 128).all())


def test_annotation_and_check_dataset_work_on_flow_folders(src, flow_run, tmp_path, capsys):
    _, _, dst = flow_run
    ann = tmp_path / 'flow.json'
    assert run_quiet(folder_json, [dst, ann, '--file_type', 'hdf5', '--val_fraction', '0.5'])[0] == 0
    database = json.loads(ann.read_text())['database']
    assert {vid: e['annotations']['segment'] for vid, e in database.items()} == {
        'r0': [0, N_FRAMES], 'r1': [0, N_FRAMES], 'l0': [0, N_FRAMES], 'l1': [0, N_FRAMES]}
    assert check_dataset.main([str(ann), str(dst), '--file_type', 'hdf5', '--input_type', 'flow',
                               '--sample_duration', '8']) == 0
    assert 'no problems' in capsys.readouterr().out


def test_flow_stream_trains_and_runs_inference(flow_run, tmp_path):
    _, _, dst = flow_run
    ann = tmp_path / 'flow.json'
    assert run_quiet(folder_json, [dst, ann, '--file_type', 'hdf5', '--val_fraction', '0.5'])[0] == 0
    result = tmp_path / 'result'
    argv = ['--video_path', str(dst), '--annotation_path', str(ann), '--result_path', str(result),
            '--n_classes', '2', *TINY, '--input_type', 'flow', '--file_type', 'hdf5',
            '--mean_dataset', '0.5', '--no_hflip', '--n_epochs', '1', '--inference']
    assert main_module.main(argv) == 0
    results = json.loads((result / 'val.json').read_text())['results']
    validation = {vid for vid, e in json.loads(ann.read_text())['database'].items()
                  if e['subset'] == 'validation'}
    assert set(results) == validation and len(validation) == 2
    for ranking in results.values():
        assert sorted(r['label'] for r in ranking) == ['left', 'right']
