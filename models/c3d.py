"""C3D as "Quo Vadis, Action Recognition?" (Carreira & Zisserman, 2017) trains it for comparison.

Tran et al.'s C3D (2015): 8 convolutions (all 3x3x3, stride 1), 5 max poolings (2x2x2, stride 2,
except the first, 1x2x2), two 4096-unit fully connected layers and the classifier. The Quo Vadis
variant adds batch normalisation after every convolution and fully connected layer and gives
the first pooling a temporal stride of 2 (its kernel here is 2x2x2 like the others', so no frame
is skipped). Layer names are C3D's: ``conv1a``, ``pool1``, ... ``conv5b``, ``pool5``, ``fc6``,
``fc7``, ``fc8`` (the head).

On its 16-frame 112x112 clips ``pool5`` gives 512 x 1 x 4 x 4 = 8192 features, as in C3D (its
poolings round up, as Caffe's did: 7 -> 4). ``adapt`` (adaptive average pooling to 1 x 4 x 4)
does nothing there; it keeps ``fc6`` at 8192 inputs for other clip sizes (a longer or larger
clip is averaged down, a tiny test clip repeated up), where the paper's fixed sizes would break.
The convolutions and linear layers have no bias: the BatchNorm after each has one.
"""
from collections import OrderedDict
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn

from models.resnet import init_weights

# (name, input channels, output channels); a pooling follows the last conv of each group
C3D_CONVS: Tuple[Tuple[Tuple[str, int, int], ...], ...] = (
    (('conv1a', 0, 64),),
    (('conv2a', 64, 128),),
    (('conv3a', 128, 256), ('conv3b', 256, 256)),
    (('conv4a', 256, 512), ('conv4b', 512, 512)),
    (('conv5a', 512, 512), ('conv5b', 512, 512)),
)
POOL5_SIZE = (1, 4, 4)
FC_SIZE = 4096


def conv_bn(in_planes: int, out_planes: int) -> nn.Sequential:
    """3x3x3 convolution (padding 1, no bias), BatchNorm, ReLU."""
    return nn.Sequential(OrderedDict([
        ('conv', nn.Conv3d(in_planes, out_planes, 3, padding=1, bias=False)),
        ('bn', nn.BatchNorm3d(out_planes)),
        ('relu', nn.ReLU(inplace=True)),
    ]))


def fc_bn(in_features: int, out_features: int, dropout: float) -> nn.Sequential:
    """Linear (no bias), BatchNorm, ReLU, Dropout (C3D's 0.5 after fc6 and fc7)."""
    return nn.Sequential(OrderedDict([
        ('fc', nn.Linear(in_features, out_features, bias=False)),
        ('bn', nn.BatchNorm1d(out_features)),
        ('relu', nn.ReLU(inplace=True)),
        ('dropout', nn.Dropout(dropout)),
    ]))


class AdaptiveAvgPool(nn.Module):
    """``F.adaptive_avg_pool3d`` as slices and means, one axis at a time (exact: the cells are boxes).

    The ONNX exporter translates only global adaptive pooling; this exports at any size, and
    an axis that already has the output size is left alone.
    """

    def __init__(self, size: Sequence[int]):
        super().__init__()
        self.size = tuple(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dim, n_out in enumerate(self.size, 2):
            n_in = x.shape[dim]
            if n_in != n_out:
                cells = []
                for i in range(n_out):
                    start, end = i * n_in // n_out, -(-(i + 1) * n_in // n_out)
                    cells.append(x.narrow(dim, start, end - start).mean(dim, keepdim=True))
                x = torch.cat(cells, dim)
        return x


class C3D(nn.Module):
    """C3D with BatchNorm (Quo Vadis): N x C x T x H x W clips to N x n_classes logits."""

    HEAD = 'fc8'  # models.factory.head_name

    def __init__(self, n_classes: int = 400, n_input_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        for group, convs in enumerate(C3D_CONVS, 1):
            for name, in_planes, out_planes in convs:
                self.add_module(name, conv_bn(in_planes or n_input_channels, out_planes))
            self.add_module(f'pool{group}', nn.MaxPool3d(2, stride=2, ceil_mode=True))
        self.adapt = AdaptiveAvgPool(POOL5_SIZE)
        n_pooled = C3D_CONVS[-1][-1][2] * POOL5_SIZE[0] * POOL5_SIZE[1] * POOL5_SIZE[2]
        self.fc6 = fc_bn(n_pooled, FC_SIZE, dropout)
        self.fc7 = fc_bn(FC_SIZE, FC_SIZE, dropout)
        self.fc8 = nn.Linear(FC_SIZE, n_classes)
        init_weights(self)

    def trunk(self) -> List[nn.Module]:
        """The convolutions and poolings in running order."""
        return [m for name, m in self.named_children() if name.startswith(('conv', 'pool'))]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x T x H x W clips to N x 4096 ``fc7`` features (the input of ``fc8``)."""
        for module in self.trunk():
            x = module(x)
        return self.fc7(self.fc6(torch.flatten(self.adapt(x), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc8(self.forward_features(x))
