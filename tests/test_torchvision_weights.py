"""torchvision video weights -> our checkpoint: same logits, options and normalisation recorded."""
import pytest
import torch
import torchvision

from models import load_checkpoint, load_model
from models.torchvision_weights import TORCHVISION_MEAN, TORCHVISION_STD
from tests.conftest import randomize_bn_stats
from util_scripts.convert_torchvision_weights import main


@pytest.mark.parametrize('arch', ['r3d_18', 'r2plus1d_18'])
def test_converted_weights_give_torchvision_logits(tmp_path, arch, capsys):
    tv = randomize_bn_stats(getattr(torchvision.models.video, arch)(weights=None)).eval()
    torch.save(tv.state_dict(), tmp_path / 'tv.pth')
    assert main([str(tmp_path / 'tv.pth'), str(tmp_path / 'ours.pth'), '--arch', arch]) == 0
    assert 'load_model' in capsys.readouterr().out

    ours = load_model(tmp_path / 'ours.pth')
    x = torch.randn(2, 3, 8, 56, 56)
    with torch.no_grad():
        diff = (tv(x) - ours(x)).abs().max().item()
    assert diff <= 1e-4

    ckpt = load_checkpoint(tmp_path / 'ours.pth')
    assert ckpt['mean'] == list(TORCHVISION_MEAN) and ckpt['std'] == list(TORCHVISION_STD)
    assert ckpt['value_scale'] == 1 and ckpt['sample_size'] == 112
    assert len(ckpt['class_names']) == 400 and ckpt['class_names'][0] == 'abseiling'
    assert ckpt['model_options']['no_max_pool'] and ckpt['model_options']['conv1_t_size'] == 3


def test_other_class_counts_and_prefixed_files_convert(tmp_path):
    tv = torchvision.models.video.r3d_18(weights=None, num_classes=10).eval()
    sd = {'module.' + k: v for k, v in tv.state_dict().items()}
    torch.save({'model': sd}, tmp_path / 'tv.pth')  # a training script's wrapper dict
    assert main([str(tmp_path / 'tv.pth'), str(tmp_path / 'ours.pth'), '--arch', 'r3d_18']) == 0
    ckpt = load_checkpoint(tmp_path / 'ours.pth')
    assert ckpt['model_options']['n_classes'] == 10 and ckpt['class_names'] is None


def test_wrong_arch_is_a_one_line_error(tmp_path, capsys):
    torch.save(torchvision.models.video.r3d_18(weights=None).state_dict(), tmp_path / 'tv.pth')
    assert main([str(tmp_path / 'tv.pth'), str(tmp_path / 'ours.pth'), '--arch', 'r2plus1d_18']) == 2
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and 'tv.pth' in err and 'is --arch right?' in err
    assert not (tmp_path / 'ours.pth').exists()
