"""I3D and the inflation of 2D Inception-v1 weights: the boring-video fixed point."""
import pytest
import torch
import torchvision

from models import generate_model, load_model
from tests.conftest import randomize_bn_stats
from util_scripts.inflate_2d_weights import main as inflate_main


def test_i3d_builds_trains_and_has_googlenet_names():
    model = generate_model(model='i3d', n_classes=5, conv1_t_stride=2)
    out = model(torch.randn(2, 3, 16, 64, 64))
    assert out.shape == (2, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    keys = model.state_dict()
    assert keys['conv1.conv.weight'].shape == (64, 3, 7, 7, 7)
    assert keys['inception3a.branch2.1.conv.weight'].shape == (128, 96, 3, 3, 3)
    assert keys['inception5b.branch4.1.conv.weight'].shape == (128, 832, 1, 1, 1)
    assert keys['fc.weight'].shape == (5, 1024)
    with torch.device('meta'):
        assert generate_model(model='i3d').fc.in_features == 1024


def test_inflated_i3d_reproduces_googlenet_on_a_boring_video(tmp_path, capsys):
    net2d = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True)
    randomize_bn_stats(net2d).eval()
    torch.save(net2d.state_dict(), tmp_path / 'googlenet.pth')
    assert inflate_main([str(tmp_path / 'googlenet.pth'), str(tmp_path / 'i3d.pth'), '--arch', 'googlenet']) == 0
    assert '--model i3d' in capsys.readouterr().out
    net3d = load_model(tmp_path / 'i3d.pth')
    image = torch.randn(2, 3, 96, 96)
    net2d.fc = torch.nn.Identity()  # pooled features, as forward_features gives them
    with torch.no_grad():
        want = net2d(image)
        for t in (8, 16, 5):
            got = net3d.forward_features(image[:, :, None].repeat(1, 1, t, 1, 1))
            assert (got - want).abs().max() <= 1e-4 * max(1.0, want.abs().max().item())


def test_inflation_rejects_other_weights(tmp_path, capsys):
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / 'r18.pth')
    assert inflate_main([str(tmp_path / 'r18.pth'), str(tmp_path / 'x.pth'), '--arch', 'googlenet']) == 2
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and 'r18.pth' in err and 'unexpected' in err


@pytest.mark.parametrize('arch,t_size,t_stride', [('resnet18', 7, 1), ('resnet50', 3, 2)])
def test_inflated_resnet_reproduces_the_2d_resnet_on_a_boring_video(tmp_path, arch, t_size, t_stride):
    net2d = randomize_bn_stats(getattr(torchvision.models, arch)(weights=None)).eval()
    torch.save(net2d.state_dict(), tmp_path / '2d.pth')
    assert inflate_main([str(tmp_path / '2d.pth'), str(tmp_path / '3d.pth'), '--arch', arch,
                         '--conv1_t_size', str(t_size), '--conv1_t_stride', str(t_stride)]) == 0
    net3d = load_model(tmp_path / '3d.pth')
    assert net3d.conv1.weight.shape[2] == t_size
    image = torch.randn(2, 3, 64, 64)
    net2d.fc = torch.nn.Identity()
    with torch.no_grad():
        want = net2d(image)
        got = net3d.forward_features(image[:, :, None].repeat(1, 1, 8, 1, 1))
    assert (got - want).abs().max() <= 1e-4 * max(1.0, want.abs().max().item())
    # the same weights with the original's zero temporal padding do not have the property
    zeros = generate_model(model='resnet', model_depth=int(arch[6:]), n_classes=1000, conv1_t_size=t_size,
                           conv1_t_stride=t_stride).eval()
    zeros.load_state_dict(net3d.state_dict())
    with torch.no_grad():
        assert (zeros.forward_features(image[:, :, None].repeat(1, 1, 8, 1, 1)) - want).abs().max() > 1e-3
