"""K+M style pretraining (two annotation files merged into one label space) with the seeds' other models.

Pretrain on "kinetics" + "mit" together, then fine-tune on a third dataset through
``--pretrain_path``, for I3D (supervised) and for Space-Time Cubic Puzzles (self-supervised).
"""
import pytest
import torch

import main as main_module
from models import load_checkpoint
from tests.video_fixtures import make_dataset

COMMON = ['--batch_size', '2', '--n_threads', '0', '--no_progress', '--learning_rate', '0.01',
          '--n_val_samples', '1', '--n_epochs', '1']


@pytest.fixture(scope='module')
def km(tmp_path_factory):
    root = tmp_path_factory.mktemp('km')
    k = make_dataset(root / 'k', 'jpg', n_frames=(16, 20, 18), labels=('run', 'swim'))
    m = make_dataset(root / 'm', 'jpg', n_frames=(17, 19, 16), labels=('cook', 'run'))
    ucf = make_dataset(root / 'ucf', 'jpg', n_frames=(16, 18), labels=('jump', 'wave', 'clap'), n_train=2)
    return {'pretrain': ['--annotation_path', str(k), str(m), '--video_path', str(root / 'k'), str(root / 'm')],
            'target': ['--annotation_path', str(ucf), '--video_path', str(root / 'ucf')]}


@pytest.mark.parametrize('model, flags', [
    ('i3d', ['--model', 'i3d', '--sample_size', '32', '--sample_duration', '8']),
    ('puzzle', ['--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25',
                '--sample_size', '32', '--sample_duration', '4', '--pretext', 'cubic_puzzle']),
])
def test_merged_pretraining_then_fine_tuning(km, tmp_path, model, flags, capsys):
    pre, ft = tmp_path / 'pre', tmp_path / 'ft'
    assert main_module.main(km['pretrain'] + COMMON + flags + ['--result_path', str(pre), '--n_classes', '4']) == 0
    out = capsys.readouterr().out
    assert 'training: 4 videos, 4 classes' in out  # 'run' is in both files: two prefixed classes
    ckpt = load_checkpoint(pre / 'save_latest.pth')
    if model == 'i3d':
        assert ckpt['class_names'] == ['k/jpg:run', 'swim', 'cook', 'm/jpg:run']
    base = [f for f in flags if f not in ('--pretext', 'cubic_puzzle')]
    # learning rate 0: the fine-tuned trunk must be exactly the pretrained one
    assert main_module.main(km['target'] + COMMON + base + ['--result_path', str(ft), '--n_classes', '3',
                                                            '--pretrain_path', str(pre / 'save_latest.pth'),
                                                            '--learning_rate', '0']) == 0
    tuned = load_checkpoint(ft / 'save_latest.pth')
    assert tuned['class_names'] == ['jump', 'wave', 'clap']
    head = 'fc.weight'
    assert tuned['state_dict'][head].shape[0] == 3
    convs = [k for k in ckpt['state_dict'] if k.endswith('weight') and ckpt['state_dict'][k].dim() == 5]
    assert len(convs) > 5
    for key in convs:
        assert torch.equal(ckpt['state_dict'][key], tuned['state_dict'][key]), key
