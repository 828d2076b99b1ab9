"""inference.py on raw video files: top-k per file and features, from a checkpoint alone."""
import json

import h5py
import numpy as np
import pytest

import inference
from models import generate_model, save_checkpoint
from tests.video_fixtures import jpeg_bytes, moving_frames, write_video

CFG = dict(model='resnet', model_depth=10, n_classes=3, resnet_widen_factor=0.25)


def test_predict_prints_top_k_per_video_and_saves_features(tmp_path, checkpoint, capsys):
    a = write_video(tmp_path / 'a.mp4', moving_frames(20, 40, 56))
    b = write_video(tmp_path / 'b.avi', moving_frames(8, 40, 56, seed=3), codec='mpeg4')
    assert inference.predict([str(a), str(b), '--resume_path', str(checkpoint), '--output_topk', '2',
                              '--features', str(tmp_path / 'feats.hdf5'), '--no_cuda']) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f'{a}: ') and lines[1].startswith(f'{b}: ')
    labels = [part.rsplit(' ', 1)[0] for part in lines[0].split(': ', 1)[1].split(', ')]
    assert len(labels) == 2 and set(labels) <= {'cook', 'dance', 'swim'}
    with h5py.File(tmp_path / 'feats.hdf5') as f:
        assert f['a.mp4/clips'].shape == (3, 128) and f['a.mp4/video'].shape == (128,)  # 20 frames: 3 windows
        assert np.allclose(f['a.mp4/video'][()], f['a.mp4/clips'][()].mean(0), atol=1e-5)
        assert f['a.mp4/segments'][()].tolist() == [[0, 8], [8, 16], [16, 20]]
        assert f['b.avi/clips'].shape == (1, 128)


def test_predict_reports_unreadable_files_and_keeps_going(tmp_path, checkpoint, capsys):
    good = write_video(tmp_path / 'good.mp4', moving_frames(8, 32, 32))
    (tmp_path / 'bad.mp4').write_bytes(b'not a video')
    assert inference.predict([str(tmp_path / 'bad.mp4'), str(good), '--resume_path', str(checkpoint),
                              '--features', str(tmp_path / 'npy'), '--no_cuda']) == 1
    captured = capsys.readouterr()
    assert 'bad.mp4' in captured.err and f'{good}: ' in captured.out
    assert (tmp_path / 'npy' / 'good.mp4.npy').is_file() and (tmp_path / 'npy' / 'good.mp4_clips.npy').is_file()


def test_checkpoints_without_class_names_need_an_annotation_file(tmp_path, capsys):
    path = save_checkpoint(tmp_path / 'bare.pth', generate_model(**CFG), CFG)
    video = write_video(tmp_path / 'v.mp4', moving_frames(8, 32, 32))
    assert inference.predict([str(video), '--resume_path', str(path), '--no_cuda']) == 2
    assert 'pass --annotation_path' in capsys.readouterr().err


def _scores(line: str) -> dict:
    return {part.rsplit(' ', 1)[0]: float(part.rsplit(' ', 1)[1]) for part in line.split(': ', 1)[1].split(', ')}


def test_predict_gives_per_label_sigmoids_for_multilabel_checkpoints(tmp_path, capsys):
    model = generate_model(**CFG).eval()
    kwargs = dict(class_names=['cook', 'dance', 'swim'], mean=[0.5] * 3, std=[0.5] * 3, sample_size=32,
                  sample_duration=8)
    single = save_checkpoint(tmp_path / 'single.pth', model, CFG, **kwargs)
    multi = save_checkpoint(tmp_path / 'multi.pth', model, CFG, extra={'multilabel': True}, **kwargs)
    video = write_video(tmp_path / 'v.mp4', moving_frames(8, 32, 32))  # one clip
    for path in (single, multi):
        assert inference.predict([str(video), '--resume_path', str(path), '--output_topk', '0', '--no_cuda',
                                  '--precision', 'fp32']) == 0  # the two runs compared: the same math
    softmax, sigmoid = (_scores(line) for line in capsys.readouterr().out.strip().splitlines())
    assert sum(softmax.values()) == pytest.approx(1.0, abs=2e-3)
    assert abs(sum(sigmoid.values()) - 1.0) > 0.1  # independent per-label scores
    # the same logits behind both: softmax of the sigmoids' logits gives the softmax scores back
    logits = {k: float(np.log(s / (1 - s))) for k, s in sigmoid.items()}
    top = max(logits.values())
    norm = sum(np.exp(v - top) for v in logits.values())
    for k in softmax:
        assert np.exp(logits[k] - top) / norm == pytest.approx(softmax[k], abs=0.01)


def test_a_jpeg_named_mp4_is_reported_and_nested_keys_keep_their_folders(tmp_path, checkpoint, capsys):
    for folder in ('x', 'y'):
        write_video(tmp_path / folder / 'a.mp4', moving_frames(8, 32, 32, seed=len(folder)))
    photo = tmp_path / 'x' / 'photo.mp4'
    photo.write_bytes(jpeg_bytes(moving_frames(1, 32, 32)[0]))
    videos = [str(tmp_path / 'x' / 'a.mp4'), str(tmp_path / 'y' / 'a.mp4'), str(photo)]
    for target in ('feats.hdf5', 'npy'):
        assert inference.predict([*videos, '--resume_path', str(checkpoint), '--features', str(tmp_path / target),
                                  '--output', str(tmp_path / 'out.json'), '--no_cuda']) == 1
        captured = capsys.readouterr()
        errors = [line for line in captured.err.splitlines() if not line.startswith('math: ')]  # the probe's line
        assert errors == [f'{photo}: error: not a video: a JPEG image'] and 'photo' not in captured.out
    assert sorted(json.loads((tmp_path / 'out.json').read_text())['results']) == ['x/a.mp4', 'y/a.mp4']
    with h5py.File(tmp_path / 'feats.hdf5') as f:
        assert sorted(f) == ['x', 'y'] and list(f['x']) == ['a.mp4'] and f['y/a.mp4/clips'].shape == (1, 128)
    assert sorted(p.relative_to(tmp_path / 'npy').as_posix() for p in (tmp_path / 'npy').rglob('*.npy')) == [
        'x/a.mp4.npy', 'x/a.mp4_clips.npy', 'y/a.mp4.npy', 'y/a.mp4_clips.npy']
    assert not list(tmp_path.rglob('*.tmp'))
