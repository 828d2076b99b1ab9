"""Bad input: one-line errors for user mistakes, counted warnings for data faults, nothing lost."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import main as main_module
from models import generate_model, load_checkpoint
from tests.video_fixtures import entry, make_dataset, moving_frames, write_annotation, write_jpg_folder, write_video
from util_scripts import folder_json, generate_video_jpgs

ROOT = Path(__file__).resolve().parents[1]
TINY = ['--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25', '--sample_size', '32',
        '--sample_duration', '8', '--batch_size', '2', '--n_threads', '0', '--no_progress', '--n_val_samples', '1']


def test_a_kill_during_checkpoint_writes_never_leaves_a_broken_file(tmp_path):
    script = ("import sys, torch\nsys.path.insert(0, %r)\nfrom models import generate_model, save_checkpoint\n"
              "cfg = dict(model='resnet', model_depth=18)\nm = generate_model(**cfg)\ni = 0\n"
              "while True:\n    i += 1\n    save_checkpoint(%r, m, cfg, epoch=i)\n    print(i, flush=True)\n"
              % (str(ROOT), str(tmp_path / 'save_latest.pth')))
    for delay in (0.05, 0.2, 0.37, 0.6):
        proc = subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == '1'  # one save done; the next ones are being written
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert load_checkpoint(tmp_path / 'save_latest.pth')['epoch'] >= 1


def test_file_names_with_spaces_and_non_ascii_characters(tmp_path):
    for label in ('play ball', 'café'):
        for k in range(2):
            write_video(tmp_path / 'src' / label / f'{label} clip {k} ü.mp4', moving_frames(10, 32, 40, seed=k))
    assert generate_video_jpgs.main([str(tmp_path / 'src'), str(tmp_path / 'jpg'), 'kinetics',
                                     '--size', '32', '--n_jobs', '1']) == 0
    assert folder_json.main([str(tmp_path / 'jpg'), str(tmp_path / 'ann.json'), '--val_fraction', '0.5']) == 0
    assert main_module.main(['--video_path', str(tmp_path / 'jpg'), '--annotation_path', str(tmp_path / 'ann.json'),
                             '--result_path', str(tmp_path / 'run'), '--n_classes', '2', '--n_epochs', '1',
                             '--inference', *TINY]) == 0
    results = json.loads((tmp_path / 'run' / 'val.json').read_text())['results']
    assert len(results) == 2 and any('ü' in vid for vid in results)


def test_single_video_subsets_and_one_frame_videos(tmp_path):
    write_jpg_folder(tmp_path / 'a' / 'long', moving_frames(12))
    write_jpg_folder(tmp_path / 'b' / 'one', moving_frames(1))       # a 1-frame video
    write_jpg_folder(tmp_path / 'a' / 'val', moving_frames(9))
    ann = write_annotation(tmp_path / 'ann.json', ['a', 'b'], {
        'long': entry('training', 'a', (1, 13)), 'one': entry('training', 'b', (1, 2)),
        'val': entry('validation', 'a', (1, 10)),                    # a subset with a single video
    })
    assert main_module.main(['--video_path', str(tmp_path), '--annotation_path', str(ann), '--result_path',
                             str(tmp_path / 'run'), '--n_classes', '2', '--n_epochs', '1', '--inference',
                             *TINY]) == 0
    assert json.loads((tmp_path / 'run' / 'val.json').read_text())['results'].keys() == {'val'}


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('bad_data')
    return root / 'jpg', make_dataset(root / 'jpg', 'jpg', n_train=2)


def base(data, result):
    return ['--video_path', str(data[0]), '--annotation_path', str(data[1]), '--result_path', str(result), *TINY]


def test_checkpoints_of_another_architecture_or_class_count(data, tmp_path, capsys):
    other = tmp_path / 'r2p1d.pth'
    torch.save({'epoch': 5, 'arch': 'resnet2p1d-10',
                'state_dict': generate_model(model='resnet2p1d', model_depth=10, n_classes=7).state_dict()}, other)
    assert main_module.main(base(data, tmp_path / 'a') + ['--n_classes', '2', '--pretrain_path', str(other),
                                                          '--n_pretrain_classes', '7']) == 2
    err = capsys.readouterr().err.strip()
    assert err.count('\n') == 0 and 'r2p1d.pth' in err and '--model resnet2p1d' in err
    assert main_module.main(base(data, tmp_path / 'b') + ['--n_classes', '2', '--model', 'resnet2p1d',
                                                          '--pretrain_path', str(other),
                                                          '--n_pretrain_classes', '400']) == 2
    assert '--n_pretrain_classes 7' in capsys.readouterr().err
    original = tmp_path / 'orig.pth'
    torch.save({'epoch': 5, 'arch': 'resnet-10', 'state_dict': generate_model(
        model='resnet', model_depth=10, n_classes=9, resnet_widen_factor=0.25).state_dict()}, original)
    assert main_module.main(base(data, tmp_path / 'c') + ['--n_classes', '2', '--resume_path', str(original)]) == 2
    assert '--n_classes 9' in capsys.readouterr().err


class NaNAfterFirstEpoch(torch.nn.CrossEntropyLoss):
    """Cross-entropy that turns NaN in epoch 2."""
    calls = 0

    def forward(self, logits, target):
        NaNAfterFirstEpoch.calls += 1
        loss = super().forward(logits, target)
        return loss * float('nan') if NaNAfterFirstEpoch.calls > 2 else loss


def test_a_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(main_module, 'criterion_for', lambda multilabel, smoothing=0.0: NaNAfterFirstEpoch())
    assert main_module.main(base(data, tmp_path) + ['--n_classes', '2', '--n_epochs', '3', '--no_val']) == 2
    err = capsys.readouterr().err
    assert 'epoch 2, batch 1: the loss is nan' in err and 'the last good checkpoint is kept' in err
    ckpt = load_checkpoint(tmp_path / 'save_latest.pth')
    assert ckpt['epoch'] == 1 and all(torch.isfinite(v).all() for v in ckpt['state_dict'].values()
                                      if v.is_floating_point())
