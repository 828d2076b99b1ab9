"""The same models on a CUDA device (skipped without one)."""
import pytest
import torch

from models import generate_model, load_model, save_checkpoint
from tests.conftest import randomize_bn_stats
from tests.test_models import SMALL


@pytest.mark.gpu
@pytest.mark.parametrize('cfg', SMALL, ids=lambda c: '-'.join(map(str, c.values())))
def test_cuda_half_precision_forward_backward(cfg):
    """Shortcut A's zero padding follows the input's device and dtype (the original's did not)."""
    model = generate_model(n_classes=5, **cfg).cuda().half()
    channels = cfg.get('n_input_channels', 3)  # two-stream models: 5 (RGB + flow)
    size = (2, 3, 16, 64, 64) if cfg['model'] == 'densenet' else (2, channels, 8, 32, 32)
    out = model(torch.randn(*size, device='cuda', dtype=torch.half))
    assert out.shape[:2] == (2, 5) and out.dtype == torch.half  # lstm in training mode: 2 x 5 x T
    out.float().sum().backward()


@pytest.mark.gpu
def test_loaded_checkpoint_gives_the_cpu_logits_on_cuda(tmp_path):
    cfg = dict(model='resnet', model_depth=10, n_classes=5)
    model = randomize_bn_stats(generate_model(**cfg)).eval()
    path = save_checkpoint(tmp_path / 'c.pth', model, cfg)
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        cpu = model(x)
        gpu = load_model(path).cuda()(x.cuda()).cpu()
    assert (cpu - gpu).abs().max() < 1e-3
