"""Issue 17: the two-stream and 3D-fused two-stream models: snapshots, forward/backward, the averaged
streams, --ft_begin_module, the cross-modality initialisation from ImageNet weights, cost."""
import pytest
import torch
import torch.nn.functional as F
import torchvision

from models import MODEL_DEFAULTS, CheckpointError, generate_model
from models.finetune import fine_tune_modules, freeze_before
from models.summary import summarize
from models.torchvision_weights import load_imagenet_backbone
from models.two_stream import snapshots, split_snapshots
from models.two_stream_init import cross_modality, imagenet_state_dict
from common.errors import UserError
from training import set_frozen_eval


def build(model, depth=22, flow_frames=3, n_classes=4):
    return generate_model(model=model, model_depth=depth, n_classes=n_classes, n_input_channels=5,
                          flow_frames=flow_frames)


def test_snapshots_are_the_papers_positions():
    # 3D-fused: 5 RGB frames 10 apart, 50 flow frames; two-stream: the middle frame, its 10 flow frames
    assert snapshots(50, 5, 10) == [(5, 0), (15, 10), (25, 20), (35, 30), (45, 40)]
    assert snapshots(10, 1, 10) == [(5, 0)]
    assert snapshots(16, 1, 10) == [(8, 3)]
    assert snapshots(12, 5, 4) == [(1, 0), (3, 1), (6, 4), (8, 6), (10, 8)]  # moved inside the clip
    with pytest.raises(ValueError, match='--sample_duration 10 or more'):
        snapshots(8, 1, 10)


def test_split_snapshots_takes_the_frames_of_each_snapshot():
    t = torch.arange(12.0).view(1, 1, 12, 1, 1)
    x = torch.cat([t + 100 * c for c in range(5)], 1).expand(2, 5, 12, 3, 3)  # value: 100 * channel + frame
    rgb, flow = split_snapshots(x, 2, 4)  # centres 3 and 9; flow frames 1-4 and 7-10
    assert rgb.shape == (2, 2, 3, 3, 3) and flow.shape == (2, 2, 8, 3, 3)
    assert rgb[0, :, :, 0, 0].tolist() == [[3, 103, 203], [9, 109, 209]]
    assert flow[0, 0, :, 0, 0].tolist() == [301, 401, 302, 402, 303, 403, 304, 404]  # u1, v1, u2, v2, ...
    assert flow[0, 1, :2, 0, 0].tolist() == [307, 407]
    with pytest.raises(ValueError, match='rgb_flow'):
        split_snapshots(x[:, :3], 1, 4)


def test_the_flow_stream_takes_2l_channels():  # forward and backward: tests/test_models.py's sweep
    net = build('fused_two_stream', 18, flow_frames=3)
    assert net.flow.first_conv().in_channels == 6 and net.rgb.first_conv().in_channels == 3
    assert net.flow.first_conv().weight.shape == (64, 6, 7, 7)


def test_two_stream_output_is_the_mean_of_the_two_streams_logits():
    net = build('two_stream', 18).eval()
    x = torch.randn(3, 5, 4, 32, 32)
    rgb, flow = net.stream_logits(x)
    assert torch.allclose(net(x), (rgb + flow) / 2, atol=1e-5)
    # each stream sees only its own input: flow changes leave the RGB logits alone
    y = x.clone()
    y[:, 3:] += 1
    assert torch.allclose(net.stream_logits(y)[0], rgb, atol=1e-5)
    assert not torch.allclose(net.stream_logits(y)[1], flow, atol=1e-3)


def test_fused_model_runs_the_streams_on_five_snapshots():
    net = build('fused_two_stream', 18, flow_frames=2).eval()
    seen = {}

    def hook(name):
        def record(module, inputs, output):
            seen[name] = tuple(inputs[0].shape)
        return record
    for name in ('rgb', 'flow', 'fusion'):
        getattr(net, name).register_forward_hook(hook(name))
    net(torch.randn(2, 5, 10, 32, 32))
    assert seen['rgb'] == (10, 3, 32, 32) and seen['flow'] == (10, 4, 32, 32)
    assert seen['fusion'] == (2, 1024, 5, 1, 1)  # both 512-channel maps, 5 steps in time
    assert net.fusion[0].kernel_size == (3, 3, 3) and net.fusion[0].out_channels == 512
    assert net.fusion[3].kernel_size == 3 and net.fc.in_features == 512


def test_wrong_channels_and_depths_are_one_line_errors():
    with pytest.raises(ValueError, match='n_input_channels must be 5, not 3'):
        generate_model(model='two_stream', model_depth=22)
    with pytest.raises(ValueError, match='two_stream has no depth 10: choose one of 22, 18, 34, 50'):
        generate_model(model='two_stream', model_depth=10, n_input_channels=5)


def test_ft_begin_module_freezes_the_earlier_stages_of_both_streams():
    net = build('fused_two_stream', 22)
    names = [n for n, _ in fine_tune_modules(net)]
    assert names[:3] == ['conv1', 'maxpool1', 'conv2'] and names[-4:] == ['fusion', 'avgpool', 'dropout', 'fc']
    frozen = freeze_before(net, 'inception5a')
    trained = {n.split('.')[0] + '.' + n.split('.')[1] for n, p in net.named_parameters() if p.requires_grad}
    assert trained == {'rgb.inception5a', 'rgb.inception5b', 'flow.inception5a', 'flow.inception5b',
                       'fusion.0', 'fusion.1', 'fc.weight', 'fc.bias'}
    net.train()
    set_frozen_eval(frozen)
    assert not net.rgb.conv1.bn.training and not net.flow.inception4e.branch1.bn.training
    assert net.flow.inception5a.branch1.bn.training and net.fusion[1].training
    before = net.flow.conv1.bn.running_mean.clone()
    F.cross_entropy(net(torch.randn(2, 5, 6, 32, 32)), torch.tensor([0, 1])).backward()
    assert torch.equal(net.flow.conv1.bn.running_mean, before) and net.rgb.conv1.conv.weight.grad is None
    with pytest.raises(UserError, match="'layer4' is not a module of this model: choose one of conv1, conv2"):
        freeze_before(build('two_stream', 22), 'layer4')


@pytest.fixture(scope='module')
def googlenet_file(tmp_path_factory):
    """A torchvision GoogLeNet state_dict (random weights, as written by torchvision: aux heads included)."""
    torch.manual_seed(3)
    net = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=True)
    for m in net.modules():  # non-trivial BatchNorm, so that a wrong mapping shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp('imagenet') / 'googlenet.pth'
    torch.save(net.state_dict(), path)
    return path


def test_cross_modality_init_is_the_averaged_rgb_filter_replicated(googlenet_file):
    source = torch.load(googlenet_file, weights_only=True)
    net = build('two_stream', 22, flow_frames=3)
    net.load_state_dict(imagenet_state_dict(net, source))
    rgb_kernel = source['conv1.conv.weight']  # 64 x 3 x 7 x 7
    flow_kernel = net.flow.conv1.conv.weight
    assert flow_kernel.shape == (64, 6, 7, 7)
    for c in range(6):
        assert torch.allclose(flow_kernel[:, c], (rgb_kernel[:, 0] + rgb_kernel[:, 1] + rgb_kernel[:, 2]) / 3)
    assert torch.equal(cross_modality(rgb_kernel, 2)[:, 1], rgb_kernel.mean(1))
    assert torch.equal(net.rgb.conv1.conv.weight, rgb_kernel)
    assert torch.equal(net.flow.inception5b.branch2[1].conv.weight, source['inception5b.branch2.1.conv.weight'])


def test_imagenet_streams_reproduce_the_2d_network(googlenet_file, tmp_path):
    net = build('two_stream', 22, flow_frames=2, n_classes=3)
    load_imagenet_backbone(net, googlenet_file)  # main.py --backbone_weights
    net.eval()
    reference = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False,
                                             transform_input=False)
    reference.load_state_dict(torch.load(googlenet_file, weights_only=True), strict=False)
    reference.fc = torch.nn.Identity()
    frame = torch.randn(2, 3, 64, 64)
    clip = torch.zeros(2, 5, 2, 64, 64)
    clip[:, :3, 1] = frame  # the snapshot's RGB frame (the centre of 2 frames)
    with torch.no_grad():
        assert torch.allclose(net.forward_features(clip)[:, :1024], reference.eval()(frame), atol=1e-4)
    with pytest.raises(CheckpointError, match=r'googlenet.pth \(for torchvision resnet18\): the 2D weights do not '
                                              r'fit: unexpected: conv1.conv.weight'):
        load_imagenet_backbone(build('fused_two_stream', 18), googlenet_file)


def test_parameter_counts_next_to_the_papers():
    """Table 1 of the paper: two-stream 12M, 3D-fused 39M (Inception-v1 streams, 400 Kinetics classes)."""
    options = dict(MODEL_DEFAULTS, model_depth=22, n_input_channels=5)
    two = summarize(dict(options, model='two_stream'), 224, 10)
    fused = summarize(dict(options, model='fused_two_stream'), 224, 50)
    assert two['params'] == 12_072_720 and fused['params'] == 39_770_896
    assert two['output_shape'] == fused['output_shape'] == (1, 400)
    assert 3.5 < two['gmacs'] < 3.8 and 25 < fused['gmacs'] < 25.5  # 2 and 10 GoogLeNet passes + the fusion
