"""Pictures: Grad-CAM, the annotated video, the examples contact sheet and the training curves."""
import av
import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

import inference
import main as main_module
from visuals import annotate as visualize
from datasets import Hdf5Loader, JpgLoader, VideoLoader, VideoRecord
from visuals.curves import PANEL_H, PANEL_W, write_curves
from visuals.overlay import draw_lines
from visuals.sheet import Example, contact_sheet, pick_examples, sheet_size
from models import generate_model, save_checkpoint
from visuals.cam import cam_layer, grad_cam, upsample
from tests.video_fixtures import make_dataset, moving_frames, write_hdf5, write_jpg_folder, write_video

ODD = ['cook\tfast', ' ', 'a\nb\x00' + 'x' * 90, '日本語 ✓']
CURVES_SIZE = (2 * PANEL_W + 36, 30 + 2 * PANEL_H + 36)


class KnownNet(nn.Module):
    """Mean brightness in 2 x 2 x 2 cells, then +/- their average: class 0 likes light, class 1 dark."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv3d(3, 1, 2, stride=2, bias=False), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.features[0].weight.fill_(1 / 24)
            self.fc.weight.copy_(torch.tensor([[1.0], [-1.0]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def test_grad_cam_peaks_where_the_evidence_is():
    net = KnownNet().eval()
    x = torch.zeros(1, 3, 8, 16, 16)
    x[:, :, 4:8, 0:4, 12:16] = 1.0  # late, top right
    assert cam_layer(net, x) is net.features
    logits, maps = grad_cam(net, net.features, x)
    assert logits.argmax(1).item() == 0 and maps.shape == (1, 4, 8, 8) and maps.max() == pytest.approx(1.0)
    full = upsample(maps, (8, 16, 16))[0]
    t, h, w = np.unravel_index(int(full.argmax()), full.shape)
    assert t >= 4 and h < 4 and w >= 12
    assert full[:3, 8:, :8].max() < 0.05  # nothing early, bottom left
    _, other = grad_cam(net, net.features, x, torch.tensor([1]))
    assert other.max() == 0  # the dark class has no evidence here


@pytest.mark.parametrize('options, stage', [(dict(model='resnet', model_depth=10, resnet_widen_factor=0.25), 'layer4'),
                                            (dict(model='densenet', model_depth=121), 'features'),
                                            (dict(model='i3d', model_depth=0), 'inception5b')])
def test_cam_layer_is_the_last_convolutional_stage(options, stage):
    model = generate_model(n_classes=3, **options).eval()
    assert cam_layer(model, torch.randn(1, 3, 16, 32, 32)) is getattr(model, stage)


def _decoded(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        codec, pix_fmt = stream.codec_context.name, stream.codec_context.pix_fmt
        return codec, pix_fmt, [f.to_ndarray(format='rgb24') for f in container.decode(stream)]


def test_annotated_video_has_every_frame_and_the_heat_map_with_cam(tmp_path):
    cfg = dict(model='resnet', model_depth=10, n_classes=4, resnet_widen_factor=0.25)
    ckpt = save_checkpoint(tmp_path / 'model.pth', generate_model(**cfg).eval(), cfg, class_names=ODD,
                           mean=[0.5] * 3, std=[0.5] * 3, sample_size=32, sample_duration=8)
    video = write_video(tmp_path / 'v.avi', moving_frames(21, 48, 64), codec='mpeg4')
    run = [str(video), '--resume_path', str(ckpt), '--no_cuda', '--annotate']
    assert inference.predict(run + [str(tmp_path / 'plain.mp4')]) == 0
    assert inference.predict(run + [str(tmp_path / 'cam.mp4'), '--cam']) == 0
    (codec, pix_fmt, plain), (_, _, cam) = _decoded(tmp_path / 'plain.mp4'), _decoded(tmp_path / 'cam.mp4')
    assert (codec, pix_fmt) == ('h264', 'yuv420p')
    assert len(plain) == len(cam) == 21 and plain[0].shape == cam[0].shape == (48, 64, 3)
    source = _decoded(video)[2]
    corner = (slice(40, 48), slice(56, 64))  # below the labels and beside the centre square: untouched
    assert np.abs(plain[5][corner].astype(int) - source[5][corner]).mean() < 12
    centre = (slice(30, 48), slice(8, 56))  # inside the square the model saw, below the labels
    assert np.abs(cam[5][centre].astype(int) - plain[5][centre]).mean() > 10



def test_several_videos_annotate_into_a_folder_under_their_keys(tmp_path, capsys):
    cfg = dict(model='resnet', model_depth=10, n_classes=2, resnet_widen_factor=0.25)
    ckpt = save_checkpoint(tmp_path / 'm.pth', generate_model(**cfg).eval(), cfg, class_names=['a', 'b'],
                           mean=[0.5] * 3, std=[0.5] * 3, sample_size=32, sample_duration=8)
    videos = [write_video(tmp_path / 'videos' / 'jump' / 'v1.avi', moving_frames(9, 32, 32), codec='mpeg4'),
              write_video(tmp_path / 'videos' / 'wave' / 'v2.mp4', moving_frames(11, 32, 32))]
    out = tmp_path / 'annotated'
    assert inference.predict([*map(str, videos), '--resume_path', str(ckpt), '--no_cuda', '--annotate', f'{out}/']) == 0
    written = {'jump/v1.avi.mp4': 9, 'wave/v2.mp4.mp4': 11}  # the key (path under the common folder) + .mp4
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob('*') if p.is_file()) == sorted(written)
    for name, frames in written.items():
        assert len(_decoded(out / name)[2]) == frames
    stdout = capsys.readouterr().out
    assert f'{videos[0]}: 9 frames annotated -> {out / "jump" / "v1.avi.mp4"}' in stdout

def test_cam_needs_annotate(tmp_path, capsys):
    cfg = dict(model='resnet', model_depth=10, n_classes=2, resnet_widen_factor=0.25)
    ckpt = save_checkpoint(tmp_path / 'm.pth', generate_model(**cfg).eval(), cfg, class_names=['a', 'b'],
                           mean=[0.5] * 3, std=[0.5] * 3, sample_size=32, sample_duration=8)
    video = write_video(tmp_path / 'v.mp4', moving_frames(8, 32, 32))
    assert inference.predict([str(video), '--resume_path', str(ckpt), '--no_cuda', '--cam']) == 2
    assert '--annotate' in capsys.readouterr().err


def test_labels_with_odd_characters_fit_on_small_frames():
    for h, w in ((12, 10), (48, 64), (240, 320)):
        out = draw_lines(np.full((h, w, 3), 128, np.uint8), ODD)
        assert out.shape == (h, w, 3) and out.dtype == np.uint8 and (out != 128).any()


def test_contact_sheet_layout_and_choice():
    predictions = {'a': ('x', 'x', 0.9), 'b': ('x', 'x', 0.95), 'c': ('y', 'y', 0.5), 'd': ('y', 'x', 0.7)}
    assert pick_examples(predictions, 2) == (['b', 'c'], ['d'])  # one per true class before the best again
    frames = [np.zeros((30, 50, 3), np.uint8)] * 6
    right = [Example(label, label, label, 0.5, frames) for label in ODD]
    sheet = contact_sheet(right, [], 'odd: \x00\n', 6)
    assert sheet.size == sheet_size(4, 0, 6) == (2 * 12 + 250 + 6 * 132, 2 * 12 + 30 + 2 * 26 + 5 * 104)


def test_strips_read_alike_from_every_storage(tmp_path):
    frames = moving_frames(12, 48, 64)
    sources = [(JpgLoader(), write_jpg_folder(tmp_path / 'jpg', frames), range(1, 13)),
               (Hdf5Loader(), write_hdf5(tmp_path / 'v.hdf5', frames), range(12)),
               (VideoLoader(planar=True), write_video(tmp_path / 'v.mp4', frames), range(12))]
    strips = [visualize.strip(loader, VideoRecord('v', 0, path, span, (0, 12)), 6)
              for loader, path, span in sources]
    assert [len(s) for s in strips] == [6, 6, 6] and strips[0][0].shape == (96, 128, 3)
    for other in strips[1:]:
        assert np.abs(np.stack(other).astype(int) - np.stack(strips[0])).mean() < 12


def test_tiny_run_draws_curves_and_examples(tmp_path):
    ann = make_dataset(tmp_path / 'data', 'hdf5', n_train=1)
    result = tmp_path / 'run'
    assert main_module.main(['--video_path', str(tmp_path / 'data'), '--annotation_path', str(ann),
                             '--file_type', 'hdf5', '--result_path', str(result), '--n_classes', '2', '--model',
                             'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25', '--sample_size',
                             '32', '--sample_duration', '8', '--batch_size', '2', '--n_threads', '0', '--no_progress',
                             '--n_epochs', '2', '--inference']) == 0
    with Image.open(result / 'curves.png') as curves:
        assert curves.size == CURVES_SIZE
    with Image.open(result / 'val_examples.png') as sheet:
        assert sheet.size in (sheet_size(1, 1, 6), sheet_size(2, 0, 6), sheet_size(0, 2, 6))
        thumbs = np.asarray(sheet)[12 + 30 + 26 + 4:12 + 30 + 26 + 100, 12 + 250:]
        assert thumbs.std() > 20  # frames, not empty boxes


def test_curves_from_logs_with_gaps_and_multilabel_columns(tmp_path):
    assert write_curves(tmp_path) is None
    (tmp_path / 'train.log').write_text('epoch\tloss\tacc\tlr\n1\t0.7\t0.5\t0.1\n2\tnan\t0.6\t0.001\n3\t0.5')
    (tmp_path / 'val.log').write_text('epoch\tloss\tacc\tmAP\trecall_at_5\n1\t0.8\t0.4\t0.3\tn/a\n')
    with Image.open(write_curves(tmp_path)) as image:
        assert image.size == CURVES_SIZE
