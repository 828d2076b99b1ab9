"""3D DenseNet-BC (growth 32, bottleneck 4x, compression 0.5) with the original's key names:
``features.conv1``/``norm1``/``pool1``, ``features.denseblockN.denselayerM.*``,
``features.transitionN.*``, ``features.norm5`` and ``classifier``.
"""
from collections import OrderedDict
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from models.resnet import init_weights

DENSENET_CONFIGS = {
    121: (6, 12, 24, 16),
    169: (6, 12, 32, 32),
    201: (6, 12, 48, 32),
    264: (6, 12, 64, 48),
}


class DenseLayer(nn.Sequential):
    """BN-ReLU-conv1x1x1 to ``bn_size * growth_rate``, BN-ReLU-conv3x3x3 to ``growth_rate``;
    the output is concatenated to the input."""

    def __init__(self, in_features: int, growth_rate: int, bn_size: int, drop_rate: float):
        super().__init__(OrderedDict([
            ('norm1', nn.BatchNorm3d(in_features)),
            ('relu1', nn.ReLU(inplace=True)),
            ('conv1', nn.Conv3d(in_features, bn_size * growth_rate, kernel_size=1, bias=False)),
            ('norm2', nn.BatchNorm3d(bn_size * growth_rate)),
            ('relu2', nn.ReLU(inplace=True)),
            ('conv2', nn.Conv3d(bn_size * growth_rate, growth_rate, kernel_size=3, padding=1,
                                bias=False)),
        ]))
        self.drop_rate = drop_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = super().forward(x)
        if self.drop_rate > 0:
            new = F.dropout(new, p=self.drop_rate, training=self.training)
        return torch.cat([x, new], 1)


class DenseBlock(nn.Sequential):
    """``n_layers`` DenseLayers named denselayer1, denselayer2, ..."""

    def __init__(self, n_layers: int, in_features: int, growth_rate: int, bn_size: int,
                 drop_rate: float):
        super().__init__()
        for i in range(n_layers):
            self.add_module(f'denselayer{i + 1}',
                            DenseLayer(in_features + i * growth_rate, growth_rate, bn_size, drop_rate))


class Transition(nn.Sequential):
    """BN-ReLU-conv1x1x1 to ``out_features``, then 2x2x2 average pooling (halves T, H, W)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__(OrderedDict([
            ('norm', nn.BatchNorm3d(in_features)),
            ('relu', nn.ReLU(inplace=True)),
            ('conv', nn.Conv3d(in_features, out_features, kernel_size=1, bias=False)),
            ('pool', nn.AvgPool3d(kernel_size=2, stride=2)),
        ]))


class DenseNet(nn.Module):
    """``features`` (stem, dense blocks, transitions, norm5), ReLU, global pool, ``classifier``."""

    def __init__(self, block_config: Sequence[int], n_input_channels: int = 3,
                 conv1_t_size: int = 7, conv1_t_stride: int = 1, no_max_pool: bool = False,
                 growth_rate: int = 32, num_init_features: int = 64, bn_size: int = 4,
                 drop_rate: float = 0.0, n_classes: int = 400):
        super().__init__()
        stem = [
            ('conv1', nn.Conv3d(n_input_channels, num_init_features,
                                kernel_size=(conv1_t_size, 7, 7), stride=(conv1_t_stride, 2, 2),
                                padding=(conv1_t_size // 2, 3, 3), bias=False)),
            ('norm1', nn.BatchNorm3d(num_init_features)),
            ('relu1', nn.ReLU(inplace=True)),
        ]
        if not no_max_pool:
            stem.append(('pool1', nn.MaxPool3d(kernel_size=3, stride=2, padding=1)))
        self.features = nn.Sequential(OrderedDict(stem))
        n_features = num_init_features
        for i, n_layers in enumerate(block_config):
            self.features.add_module(f'denseblock{i + 1}', DenseBlock(
                n_layers, n_features, growth_rate, bn_size, drop_rate))
            n_features += n_layers * growth_rate
            if i != len(block_config) - 1:
                self.features.add_module(f'transition{i + 1}', Transition(n_features, n_features // 2))
                n_features //= 2
        self.features.add_module('norm5', nn.BatchNorm3d(n_features))
        self.classifier = nn.Linear(n_features, n_classes)

        init_weights(self)
        nn.init.constant_(self.classifier.bias, 0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x T x H x W clips to N x F globally pooled features (the input of ``classifier``)."""
        x = F.relu(self.features(x), inplace=True)
        return torch.flatten(F.adaptive_avg_pool3d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.forward_features(x))


def densenet(depth: int, **kwargs) -> DenseNet:
    """DenseNet-BC of the given depth (121, 169, 201, 264)."""
    return DenseNet(DENSENET_CONFIGS[depth], **kwargs)
