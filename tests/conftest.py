"""Shared fixtures and the GPU marker: tests marked ``gpu`` are skipped without CUDA."""
import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs a CUDA device')
    for item in items:
        if 'gpu' in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def checkpoint(tmp_path):
    """A ResNet-10 at width 0.25 with random weights: 3 classes (cook, dance, swim), 8 x 32 x 32 clips."""
    from models import generate_model, save_checkpoint
    cfg = dict(model='resnet', model_depth=10, n_classes=3, resnet_widen_factor=0.25)
    return save_checkpoint(tmp_path / 'model.pth', generate_model(**cfg).eval(), cfg,
                           class_names=['cook', 'dance', 'swim'], mean=[0.5] * 3, std=[0.5] * 3,
                           sample_size=32, sample_duration=8)


NARROW_C3D = (((('conv1a', 0, 4),), (('conv2a', 4, 8),), (('conv3a', 8, 8), ('conv3b', 8, 8)),
               (('conv4a', 8, 8), ('conv4b', 8, 8)), (('conv5a', 8, 8), ('conv5b', 8, 8))), 32)


@pytest.fixture
def narrow_c3d(monkeypatch):
    """C3D with the paper's layers at a few channels and 32-unit fc6/fc7 (the full one is 79M parameters)."""
    from models import c3d
    monkeypatch.setattr(c3d, 'C3D_CONVS', NARROW_C3D[0])
    monkeypatch.setattr(c3d, 'FC_SIZE', NARROW_C3D[1])


def randomize_bn_stats(model: torch.nn.Module) -> torch.nn.Module:
    """Give every BatchNorm non-trivial running statistics so eval outputs depend on them."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return model


class _TinyResNet(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in ('conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4'):
            x = getattr(self, name)(x)
        return self.fc(x.mean((2, 3)))


def tiny_resnet_trunk() -> torch.nn.Module:
    """A 2D network named like torchvision's ResNets (``conv1`` ... ``layer4``, ``fc``) but 8 channels wide:
    a fast stand-in for the torchvision frame networks (``models.frame_nets.BACKBONES``) of the
    two-stream and lstm models."""
    nn = torch.nn
    net = _TinyResNet()
    net.conv1, net.bn1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8)
    net.relu, net.maxpool = nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)
    for i in range(1, 5):
        setattr(net, f'layer{i}', nn.Sequential(nn.Conv2d(8, 8, 3, 2 if i > 1 else 1, 1, bias=False),
                                                nn.BatchNorm2d(8), nn.ReLU(inplace=True)))
    net.fc = nn.Linear(8, 1000)
    return net
