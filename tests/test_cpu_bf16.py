"""CPU bf16 autocast: Conv3d weight gradients are right where oneDNN's bf16 kernel is not (models/cpu_bf16.py)."""
import pytest
import torch
import torch.nn.functional as F

from models.cpu_bf16 import Bf16ConvGuard, shorter_than_kernel
from models.precision import autocast

CPU = torch.device('cpu')


def relative_error(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a.double() - ref).abs().max() / ref.abs().max()).item()


# (T, kernel_t, padding_t): every case with 1 < T < kernel_t gave wrong weight gradients on the
# development VM's AVX512-bf16 CPU without the guard (up to 1e33, or NaN); T=1 and T >= kernel_t did not.
@pytest.mark.parametrize('t, kt, pt', [(2, 3, 1), (2, 7, 3), (3, 5, 2), (4, 5, 2), (6, 7, 3)])
def test_bf16_weight_gradients_match_fp64_when_the_clip_is_shorter_than_the_kernel(t, kt, pt):
    torch.manual_seed(t * 10 + kt)
    conv = torch.nn.Conv3d(32, 32, (kt, 3, 3), padding=(pt, 1, 1), bias=False)
    for _ in range(3):  # the defect's worst outputs are sporadic: several draws
        conv.weight.grad = None
        x = torch.randn(4, 32, t, 7, 7)
        with autocast(CPU, torch.bfloat16):
            out = conv(x)
        grad = torch.randn(out.shape)
        out.backward(grad)
        ref = torch.nn.grad.conv3d_weight(x.double(), conv.weight.shape, grad.double(), padding=(pt, 1, 1))
        assert torch.isfinite(conv.weight.grad).all()
        assert relative_error(conv.weight.grad, ref) < 0.02


def test_only_the_affected_convolutions_leave_bf16():
    guard = Bf16ConvGuard()
    conv = torch.nn.Conv3d(8, 8, 3, padding=1)
    with torch.autocast('cpu', dtype=torch.bfloat16), guard:
        assert conv(torch.randn(2, 8, 4, 5, 5)).dtype == torch.bfloat16  # T >= kernel: bf16 as asked
        assert conv(torch.randn(2, 8, 1, 5, 5)).dtype == torch.bfloat16  # one frame: unaffected
        assert conv(torch.randn(2, 8, 2, 5, 5)).dtype == torch.float32
        # the functional form with keyword arguments, and a bias, are covered too
        out = F.conv3d(input=torch.randn(2, 8, 2, 5, 5), weight=conv.weight, bias=conv.bias, padding=1)
        assert out.dtype == torch.float32
    assert guard.rerouted == 2
    with guard:  # outside autocast nothing changes
        assert conv(torch.randn(2, 8, 2, 5, 5)).dtype == torch.float32
    with torch.autocast('cpu', dtype=torch.bfloat16), guard:
        with torch.no_grad():  # no weight gradient to get wrong: inference keeps bf16
            assert conv(torch.randn(2, 8, 2, 5, 5)).dtype == torch.bfloat16
        conv.requires_grad_(False)  # a frozen layer (--ft_begin_module) neither
        assert conv(torch.randn(2, 8, 2, 5, 5)).dtype == torch.bfloat16
    assert guard.rerouted == 2


def test_the_rule_follows_the_kernels_temporal_extent_and_padding():
    w = torch.empty(4, 4, 3, 3, 3)
    assert [shorter_than_kernel(torch.empty(1, 4, t, 5, 5), w, padding=1) for t in (1, 2, 3)] == [False, True, False]
    assert shorter_than_kernel(torch.empty(1, 4, 4, 5, 5), w, dilation=(2, 1, 1))  # extent 5
    assert not shorter_than_kernel(torch.empty(4, 3, 5, 5), torch.empty(4, 4, 1, 3, 3))
    # one frame is wrong too when padded by more than half the kernel (not the usual padding)
    assert shorter_than_kernel(torch.empty(1, 4, 1, 5, 5), w, padding=(2, 1, 1))
    assert not shorter_than_kernel(torch.empty(1, 4, 1, 5, 5), w, padding='same')


def test_one_frame_padded_by_more_than_half_the_kernel_gets_right_gradients():
    torch.manual_seed(1)
    conv = torch.nn.Conv3d(32, 32, (3, 3, 3), padding=(2, 1, 1), bias=False)
    x = torch.randn(4, 32, 1, 7, 7)
    with autocast(CPU, torch.bfloat16):
        out = conv(x)
    grad = torch.randn(out.shape)
    out.backward(grad)
    ref = torch.nn.grad.conv3d_weight(x.double(), conv.weight.shape, grad.double(), padding=(2, 1, 1))
    assert torch.isfinite(conv.weight.grad).all() and relative_error(conv.weight.grad, ref) < 0.02


def test_autocast_starts_at_with_and_ends_with_it():
    context = autocast(CPU, torch.bfloat16)
    assert not torch.is_autocast_enabled('cpu')  # made, not entered: nothing changed yet
    with context:
        assert torch.is_autocast_enabled('cpu') and torch.get_autocast_dtype('cpu') == torch.bfloat16
        assert torch.conv3d(torch.randn(1, 2, 2, 4, 4), torch.randn(2, 2, 3, 3, 3, requires_grad=True),
                            padding=1).dtype == torch.float32  # the guard is on
    assert not torch.is_autocast_enabled('cpu')
    with autocast(CPU, None):
        assert not torch.is_autocast_enabled('cpu')
    with autocast(CPU, torch.float16):  # no guard: fp16 is right
        assert torch.conv3d(torch.randn(1, 2, 2, 4, 4), torch.randn(2, 2, 3, 3, 3, requires_grad=True),
                            padding=1).dtype == torch.float16
