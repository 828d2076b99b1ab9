"""C3D and ConvNet+LSTM (issue 17): the paper's sizes, the per-step training contract, fine-tuning,
ImageNet weights of the 2D network, checkpoints through main.py, export and the cost counts."""
import json

import pytest
import torch
import torch.nn.functional as F
import torchvision

import main as main_module
from common.errors import UserError
from models import c3d, generate_model, load_checkpoint, load_model, replace_head, save_checkpoint
from visuals.cam import cam_layer
from models.checkpoint import CheckpointError
from models.factory import head_of, head_name
from models.finetune import fine_tune_modules, freeze_before
from models.summary import forward_gmacs, summarize
from models.torchvision_weights import load_imagenet_backbone
from opts import parse_opts
from tests.conftest import randomize_bn_stats
from tests.video_fixtures import make_dataset
from training import count_hits, criterion_for
from util_scripts import model_summary

def meta(**options):
    with torch.device('meta'):
        return generate_model(**options)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


# ----------------------------------------------------------------------------- C3D

def test_c3d_has_the_papers_layers_and_size():
    model = meta(model='c3d', n_classes=400)
    names = [n for n, _ in model.named_children()]
    assert names == ['conv1a', 'pool1', 'conv2a', 'pool2', 'conv3a', 'conv3b', 'pool3', 'conv4a', 'conv4b', 'pool4',
                     'conv5a', 'conv5b', 'pool5', 'adapt', 'fc6', 'fc7', 'fc8']
    assert n_params(model) == 79_645_520  # Table 1: 79M
    assert head_name(model) == 'fc8' and head_of(model).in_features == 4096
    assert model.pool1.stride == 2  # the paper's temporal stride 2 in the first pooling
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in model.modules()) == 8
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()) == 2  # after fc6 and fc7
    x = torch.empty(1, 3, 16, 112, 112, device='meta')
    for module in model.trunk():
        x = module(x)
    assert x.shape == (1, 512, 1, 4, 4)  # 8192 features into fc6, as C3D's, with no adaptive pooling needed
    assert summarize({'model': 'c3d', 'model_depth': 3})['arch'] == 'c3d-8'  # any depth: the one C3D has


@pytest.mark.parametrize('shape', [(2, 3, 1, 1, 1), (1, 2, 3, 7, 9), (2, 1, 5, 4, 4), (1, 1, 2, 13, 2)])
def test_c3d_adaptive_pooling_is_torchs(shape):
    x = torch.randn(shape)
    assert torch.allclose(c3d.AdaptiveAvgPool((1, 4, 4))(x), F.adaptive_avg_pool3d(x, (1, 4, 4)), atol=1e-6)


# ----------------------------------------------------------------------------- ConvNet+LSTM

def test_lstm_sizes_and_modules():
    googlenet = meta(model='lstm', model_depth=22, n_classes=400)
    assert n_params(googlenet) == 8_954_928  # Table 1: 9M
    assert googlenet.lstm.hidden_size == 512 and googlenet.lstm.input_size == 1024
    assert not hasattr(googlenet.backbone, 'aux1') or googlenet.backbone.aux1 is None
    names = [n for n, m in fine_tune_modules(googlenet) if n_params(m)]  # --ft_begin_module's choices
    assert names[0] == 'conv1' and names[-3:] == ['inception5b', 'lstm', 'fc'] and names.count('fc') == 1
    resnet = meta(model='lstm', model_depth=50, n_classes=400)
    assert resnet.lstm.input_size == 2048 and [n for n, m in fine_tune_modules(resnet) if n_params(m)][-3:] == \
        ['layer4', 'lstm', 'fc']
    assert summarize({'model': 'lstm', 'model_depth': 18})['arch'] == 'lstm-18'
    with pytest.raises(ValueError, match='lstm has no depth 10: choose one of 22, 18, 34, 50'):
        generate_model(model='lstm', model_depth=10)
    with pytest.raises(ValueError, match='lstm_eval must be one of last, mean'):
        generate_model(model='lstm', lstm_eval='max')


def test_lstm_predicts_every_step_in_training_and_the_last_or_mean_in_eval():
    torch.manual_seed(1)
    model = randomize_bn_stats(generate_model(model='lstm', model_depth=18, n_classes=4))
    x = torch.randn(2, 3, 5, 32, 32)
    assert model.train()(x).shape == (2, 4, 5)
    model.eval()
    with torch.no_grad():
        steps = model.fc(model.step_features(x)).transpose(1, 2)  # N x classes x T, eval-mode BatchNorm
        last = model(x)
        model.eval_output = 'mean'
        mean = model(x)
    assert torch.allclose(last, steps[..., -1], atol=1e-5) and torch.allclose(mean, steps.mean(2), atol=1e-5)
    assert not torch.allclose(last, mean, atol=1e-3)
    assert torch.allclose(model.fc(model.forward_features(x)), mean, atol=1e-5)  # features match the output


def test_the_loss_of_every_step_is_the_mean_of_the_per_step_losses():
    logits, y = torch.randn(3, 6, 4), torch.tensor([0, 5, 2])
    for smoothing in (0.0, 0.1):
        want = sum(F.cross_entropy(logits[..., t], y, label_smoothing=smoothing) for t in range(4)) / 4
        assert torch.allclose(criterion_for(False, smoothing)(logits, y), want)
    multi = torch.tensor([[1, 0, 0, 1, 0, 0], [0, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]]).float()
    want = sum(F.binary_cross_entropy_with_logits(logits[..., t], multi) for t in range(4)) / 4
    assert torch.allclose(criterion_for(True)(logits, multi), want)
    assert torch.allclose(criterion_for(False)(logits[..., 0], y), F.cross_entropy(logits[..., 0], y))  # 2-D: as before
    hits = logits.clone()
    hits[..., -1] = F.one_hot(y, 6).float() * 10  # right at the last step only
    hits[..., :-1] = -F.one_hot(y, 6)[..., None].float() * 10
    assert count_hits(hits, y) == 3


def test_forward_gmacs_counts_the_lstm_on_the_cpu_as_on_meta():
    model = generate_model(model='lstm', model_depth=18, n_classes=5)
    want = summarize({'model': 'lstm', 'model_depth': 18, 'n_classes': 5}, 32, 4)['gmacs']
    lstm_macs = 4 * 4 * 512 * (512 + 512) / 1e9
    assert forward_gmacs(model, (3, 4, 32, 32)) == pytest.approx(want) and want > lstm_macs


def test_grad_cam_explains_c3d_and_refuses_lstm_in_one_line(narrow_c3d):
    model = generate_model(model='c3d', n_classes=3).eval()
    assert cam_layer(model, torch.randn(1, 3, 8, 32, 32)) is model.conv5b
    with pytest.raises(UserError, match='^ConvLSTM: no convolution gives a 5-D feature map, so no Grad-CAM$'):
        cam_layer(generate_model(model='lstm', model_depth=18, n_classes=3).eval(), torch.randn(1, 3, 2, 32, 32))


# ----------------------------------------------------------------------------- fine-tuning and weights

def test_ft_begin_module_freezes_everything_before_it(narrow_c3d):
    model = generate_model(model='c3d', n_classes=3)
    frozen = freeze_before(model, 'fc7')
    assert [m for m in frozen if any(True for _ in m.parameters())][-1] is model.fc6
    trained = {n.split('.')[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trained == {'fc7', 'fc8'}
    lstm = generate_model(model='lstm', model_depth=18, n_classes=3)
    freeze_before(lstm, 'lstm')
    trained = {n.split('.')[0] for n, p in lstm.named_parameters() if p.requires_grad}
    assert trained == {'lstm', 'fc'}
    lstm = generate_model(model='lstm', model_depth=18, n_classes=3)
    freeze_before(lstm, 'layer4')
    assert lstm.backbone.layer4[0].conv1.weight.requires_grad and not lstm.backbone.layer3[0].conv1.weight.requires_grad
    replace_head(lstm, 7)
    assert lstm.fc.out_features == 7 and lstm.eval()(torch.randn(1, 3, 2, 32, 32)).shape == (1, 7)


def test_imagenet_weights_load_from_torchvision_state_dicts(tmp_path):
    imagenet = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    torch.save(imagenet.state_dict(), tmp_path / 'googlenet.pth')  # with fc, aux1 and aux2, as torchvision's file
    model = generate_model(model='lstm', model_depth=22, n_classes=3)
    load_imagenet_backbone(model, tmp_path / 'googlenet.pth')
    got = model.backbone.state_dict()
    assert all(torch.equal(got[k], v) for k, v in imagenet.state_dict().items() if k in got)
    assert torch.equal(got['inception5b.branch4.1.conv.weight'], imagenet.inception5b.branch4[1].conv.weight)
    torch.save({'model': torchvision.models.resnet34(weights=None).state_dict()}, tmp_path / 'r34.pth')
    with pytest.raises(CheckpointError, match=r'r34.pth \(ImageNet weights of the 2D network\): weights do not fit '
                                              r'ResNet: \d+ unexpected keys \(layer1.2'):
        load_imagenet_backbone(generate_model(model='lstm', model_depth=18), tmp_path / 'r34.pth')
    with pytest.raises(CheckpointError, match='has no 2D ImageNet network'):
        load_imagenet_backbone(generate_model(model='resnet', model_depth=10), tmp_path / 'r34.pth')


def test_options_refuse_what_lstm_cannot_do(capsys):
    base = ['--result_path', 'r', '--model', 'lstm', '--model_depth', '22']
    assert parse_opts(base + ['--lstm_eval', 'mean']).lstm_eval == 'mean'
    assert parse_opts(['--result_path', 'r', '--model', 'c3d']).arch == 'c3d-8'  # any depth: the one C3D has
    for extra, message in ((['--channels_last'], 'layout of 3D convolutions'),
                           (['--pretext', 'cubic_puzzle'], 'one per time step'),
                           (['--model', 'c3d', '--backbone_weights', 'w.pth'], 'not --model c3d')):
        with pytest.raises(SystemExit):
            parse_opts(base + extra)
        assert message in capsys.readouterr().err


# ----------------------------------------------------------------------------- main.py, checkpoints, summary

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('qv_data')
    return root / 'jpg', make_dataset(root / 'jpg', 'jpg', n_frames=(12, 20, 9, 16, 14, 10), n_train=2)


def run_main(data, result, *extra):
    return main_module.main(['--video_path', str(data[0]), '--annotation_path', str(data[1]), '--result_path',
                             str(result), '--n_classes', '2', '--sample_size', '32', '--sample_duration', '4',
                             '--batch_size', '2', '--n_threads', '0', '--no_progress', '--learning_rate', '0.01',
                             '--n_val_samples', '1', '--n_epochs', '1', *extra])


def test_lstm_trains_from_imagenet_weights_with_a_frozen_backbone_and_its_checkpoint_rebuilds(data, tmp_path):
    imagenet = randomize_bn_stats(torchvision.models.resnet18(weights=None))
    torch.save(imagenet.state_dict(), tmp_path / 'resnet18.pth')
    result = tmp_path / 'lstm'
    assert run_main(data, result, '--model', 'lstm', '--model_depth', '18', '--lstm_eval', 'mean',
                    '--backbone_weights', str(tmp_path / 'resnet18.pth'), '--ft_begin_module', 'lstm') == 0
    ckpt = load_checkpoint(result / 'save_latest.pth')
    assert ckpt['arch'] == 'lstm-18' and ckpt['model_options']['lstm_eval'] == 'mean'
    sd = ckpt['state_dict']
    for key in ('conv1.weight', 'bn1.running_var', 'layer4.1.bn2.running_mean'):  # loaded, then frozen
        assert torch.equal(sd[f'backbone.{key}'], imagenet.state_dict()[key]), key
    assert (result / 'val.log').read_text().count('\n') == 2  # header and epoch 1
    model = load_model(result / 'save_latest.pth')
    assert model.eval_output == 'mean' and model(torch.randn(1, 3, 4, 32, 32)).shape == (1, 2)
    assert load_model(result / 'save_latest.pth', lstm_eval='last').eval_output == 'last'
    # evaluating the same weights on the last step: main.py takes --lstm_eval from its flags, as the view flags
    assert run_main(data, result, '--model', 'lstm', '--resume_path', str(result / 'save_latest.pth'),
                    '--no_train') == 0
    assert json.loads((result / 'opts_eval.json').read_text())['lstm_eval'] == 'last'


def test_c3d_fine_tunes_from_a_checkpoint_with_a_new_fc8(data, tmp_path, narrow_c3d):
    pretrained = randomize_bn_stats(generate_model(model='c3d', n_classes=5))
    save_checkpoint(tmp_path / 'c3d.pth', pretrained, {'model': 'c3d', 'n_classes': 5})
    before = pretrained.state_dict()
    result = tmp_path / 'ft'
    assert run_main(data, result, '--model', 'c3d', '--pretrain_path', str(tmp_path / 'c3d.pth'),
                    '--ft_begin_module', 'fc8', '--no_val') == 0
    after = load_checkpoint(result / 'save_latest.pth')
    assert after['state_dict']['fc8.weight'].shape == (2, 32) and after['model_options']['n_classes'] == 2
    assert torch.equal(after['state_dict']['fc7.bn.running_mean'], before['fc7.bn.running_mean'])
    assert torch.equal(after['state_dict']['conv1a.conv.weight'], before['conv1a.conv.weight'])


def test_model_summary_counts_both(capsys):
    assert model_summary.main(['--model', 'c3d']) == 0
    assert '79,645,520 parameters, 19.82 GMACs per clip' in capsys.readouterr().out
    assert model_summary.main(['--model', 'lstm', '--model_depth', '22', '--sample_size', '224',
                               '--sample_duration', '25']) == 0
    assert 'lstm-22: 8,954,928 parameters, 37.51 GMACs per clip' in capsys.readouterr().out


def test_model_summary_gives_two_stream_models_their_5_channel_clips(capsys):
    assert model_summary.main(['--model', 'two_stream', '--model_depth', '22']) == 0
    assert 'two_stream-22: 12,072,720 parameters' in capsys.readouterr().out  # no --n_input_channels needed
    assert model_summary.main(['--model', 'fused_two_stream', '--model_depth', '22', '--n_input_channels', '3']) == 2
    assert 'n_input_channels must be 5' in capsys.readouterr().err  # a 3 given on purpose is still refused


def test_inference_py_takes_lstm_eval_over_what_the_checkpoint_records(tmp_path, capsys):
    import inference
    from models import save_checkpoint
    from tests.video_fixtures import moving_frames, write_video
    video = write_video(tmp_path / 'v.mp4', moving_frames(12, 32, 32))
    config = dict(model='lstm', model_depth=18, n_classes=2, lstm_eval='last')
    torch.manual_seed(0)
    lstm = randomize_bn_stats(generate_model(**config)).eval()
    checkpoint = save_checkpoint(tmp_path / 'lstm.pth', lstm, config, class_names=['a', 'b'], mean=[0.5] * 3,
                                 std=[0.5] * 3, sample_size=32, sample_duration=4)
    scores = {}
    for how in ('last', 'mean', None):
        out = tmp_path / f'{how}.json'
        argv = [str(video), '--resume_path', str(checkpoint), '--no_cuda', '--output', str(out),
                '--precision', 'fp32']  # the runs compared exactly: the same math, not each its probe's
        assert inference.predict(argv + (['--lstm_eval', how] if how else [])) == 0, capsys.readouterr()
        scores[how] = json.loads(out.read_text())['results']['v.mp4'][0]['score']
    assert scores[None] == scores['last'] != scores['mean']  # recorded 'last' unless the flag says otherwise
    resnet = save_checkpoint(tmp_path / 'r.pth', generate_model(model='resnet', model_depth=10, n_classes=2),
                               {'model': 'resnet', 'model_depth': 10, 'n_classes': 2}, class_names=['a', 'b'])
    assert inference.predict([str(video), '--resume_path', str(resnet), '--lstm_eval', 'mean', '--no_cuda']) == 2
    assert '--lstm_eval applies to --model lstm checkpoints only' in capsys.readouterr().err
