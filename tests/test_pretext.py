"""main.py --pretext cubic_puzzle: self-supervised pretraining, resume, and fine-tuning through --pretrain_path."""
import pytest
import torch

import main as main_module
from models import CheckpointError, load_checkpoint, load_model
from models.cubic_puzzle import N_PUZZLE_CLASSES
from tests.video_fixtures import make_dataset

TINY = ['--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25', '--sample_size', '16',
        '--sample_duration', '4', '--batch_size', '2', '--n_threads', '0', '--no_progress',
        '--learning_rate', '0.01', '--n_val_samples', '1', '--checkpoint', '1']


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('pretext_data')
    ann = make_dataset(root / 'jpg', 'jpg', n_frames=(12, 20, 9, 16, 14, 10), n_train=2)
    return ['--video_path', str(root / 'jpg'), '--annotation_path', str(ann)]


@pytest.fixture(scope='module')
def pretrained(data, tmp_path_factory):
    result = tmp_path_factory.mktemp('puzzle')
    assert main_module.main(data + TINY + ['--result_path', str(result), '--pretext', 'cubic_puzzle',
                                           '--n_epochs', '1']) == 0
    return result


def test_pretext_checkpoint_holds_a_headless_trunk_and_the_puzzle_head(pretrained):
    ckpt = load_checkpoint(pretrained / 'save_1.pth')
    assert ckpt['pretext'] == 'cubic_puzzle'
    keys = set(ckpt['state_dict'])
    assert 'conv1.weight' in keys and 'layer4.0.conv1.weight' in keys
    assert not any(k.startswith('fc.') for k in keys)
    head = ckpt['pretext_head']
    assert head['weight'].shape == (N_PUZZLE_CLASSES, 4 * 128) and head['bias'].shape == (N_PUZZLE_CLASSES,)
    assert ckpt['model_options']['n_classes'] == N_PUZZLE_CLASSES
    header = (pretrained / 'val.log').read_text().splitlines()[0].split('\t')
    assert header[:3] == ['epoch', 'loss', 'acc']


def test_pretext_run_resumes(data, pretrained):
    assert main_module.main(data + TINY + ['--result_path', str(pretrained), '--pretext', 'cubic_puzzle',
                                           '--resume_path', 'latest', '--n_epochs', '2']) == 0
    assert load_checkpoint(pretrained / 'save_latest.pth')['epoch'] == 2
    rows = (pretrained / 'train.log').read_text().splitlines()
    assert [r.split('\t')[0] for r in rows[1:]] == ['1', '2']


def test_fine_tuning_starts_from_the_puzzle_trunk(data, pretrained, tmp_path):
    result = tmp_path / 'ft'
    # Only fc trains: the trunk must stay exactly the pretrained one.
    assert main_module.main(data + TINY + ['--result_path', str(result), '--pretrain_path',
                                           str(pretrained / 'save_1.pth'), '--n_classes', '2',
                                           '--ft_begin_module', 'fc', '--n_epochs', '1']) == 0
    puzzle = load_checkpoint(pretrained / 'save_1.pth')['state_dict']
    tuned = load_checkpoint(result / 'save_1.pth')
    assert tuned['state_dict']['fc.weight'].shape == (2, 128)
    assert 'pretext' not in tuned
    for key, value in puzzle.items():
        assert torch.equal(tuned['state_dict'][key], value), key


def test_pretext_checkpoint_misuse_is_reported(data, pretrained, tmp_path, capsys):
    assert main_module.main(data + TINY + ['--result_path', str(pretrained), '--n_classes', '2',
                                           '--resume_path', 'latest', '--n_epochs', '3']) == 2
    assert '--pretext cubic_puzzle' in capsys.readouterr().err
    with pytest.raises(CheckpointError, match='no classifier'):
        load_model(pretrained / 'save_1.pth')
    with pytest.raises(SystemExit):
        main_module.main(data + TINY + ['--result_path', str(tmp_path), '--pretext', 'cubic_puzzle', '--inference'])
