"""Grad-CAM for 3D CNNs: where in space and time a clip raised a class's score.

The maps come from the model's last 5-D feature map made by convolutions (``layer4`` of the
ResNet families, DenseNet's ``features``, I3D's ``inception5b``), found by running a clip
(``cam_layer``): each channel is weighted by the mean gradient of the class score over it, the
weighted sum is clipped at zero and scaled to a peak of 1 per clip (Selvaraju et al., 2017).
"""
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.errors import UserError


def _has_conv(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())


def cam_layer(model: nn.Module, clips: torch.Tensor) -> nn.Module:
    """The last module (in running order) that contains a convolution and outputs a 5-D tensor.

    ``clips`` is any normalised N x C x T x H x W input (one clip is enough). ``UserError`` (a
    ValueError) if no such module runs: the model has no 3D feature map to explain (``lstm``'s
    2D network sees one frame at a time).
    """
    finished: List[nn.Module] = []

    def hook(module: nn.Module, inputs: Tuple, output: object) -> None:
        if isinstance(output, torch.Tensor) and output.dim() == 5:
            finished.append(module)

    handles = [m.register_forward_hook(hook) for m in model.modules() if m is not model and _has_conv(m)]
    try:
        with torch.no_grad():
            model(clips)
    finally:
        for handle in handles:
            handle.remove()
    if not finished:
        raise UserError(f'{type(model).__name__}: no convolution gives a 5-D feature map, so no Grad-CAM')
    return finished[-1]


def grad_cam(model: nn.Module, layer: nn.Module, clips: torch.Tensor,
             classes: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(logits N x K, maps N x T' x H' x W' in [0, 1]) of ``classes`` (default: each clip's top class).

    The maps have ``layer``'s resolution; ``upsample`` brings them to the clip's.
    """
    store = {}

    def hook(module: nn.Module, inputs: Tuple, output: torch.Tensor) -> torch.Tensor:
        store['features'] = output
        return output.clone()  # what follows may work in place; the kept map stays as it was

    handle = layer.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(clips.detach().requires_grad_(True)).float()
            target = logits.argmax(1) if classes is None else classes.to(logits.device)
            features = store['features']
            (grads,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), features)
    finally:
        handle.remove()
    weights = grads.float().mean(dim=(2, 3, 4), keepdim=True)
    maps = F.relu((weights * features.detach().float()).sum(1))
    peak = maps.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return logits.detach(), maps / peak


def upsample(maps: torch.Tensor, size: Tuple[int, int, int]) -> torch.Tensor:
    """N x T' x H' x W' maps to N x T x H x W (trilinear), still in [0, 1]."""
    return F.interpolate(maps[:, None], size=size, mode='trilinear', align_corners=False)[:, 0].clamp_(0, 1)
