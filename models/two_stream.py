"""Two-stream networks as "Quo Vadis, Action Recognition?" (Carreira & Zisserman, 2017) compares them.

Both take ``--input_type rgb_flow`` clips: N x 5 x T x H x W, RGB (3 channels) and optical
flow u, v (2) of the same frames. A clip holds ``steps`` snapshots spread evenly over its T
frames (``snapshots``): the RGB frame at the centre of each, and the ``flow_frames`` (L) flow
frames around it, stacked into 2L channels (u1, v1, u2, v2, ...) as Simonyan & Zisserman do.
Each stream is a torchvision 2D ImageNet network without its pooling and classifier
(``Trunk2d``; ``model_depth`` 22 is GoogLeNet, i.e. Inception-v1 with BatchNorm, the paper's
backbone; 18, 34, 50 are ResNets); the flow stream's first convolution takes 2L channels.

- ``TwoStream`` (``two_stream``): one snapshot (one RGB frame, L flow frames); the two streams'
  predictions are averaged in training and testing. The average is of logits, so softmax of
  the output is the normalised geometric mean of the streams' class probabilities: it works
  with every head of the framework (softmax cross-entropy, ``--multilabel``'s sigmoids, the
  inference's softmax), and each stream gets the same gradient (an average of probabilities
  gives most of it to whichever stream is already better). The mean of two linear
  classifiers is one linear classifier of the concatenated features, so it is stored as one
  ``fc`` (2D -> classes); ``stream_logits`` gives each stream's own prediction.
- ``FusedTwoStream`` (``fused_two_stream``, the paper's "3D-fused"): 5 snapshots; both
  streams' last feature maps (D x h x w per snapshot) are stacked in time and concatenated
  (2D x 5 x h x w), fused (``fusion``) by a 3x3x3 Conv3d with 512 outputs (+ BatchNorm, ReLU)
  and a 3x3x3 max pool (stride 2), then global average pooling and one fully connected layer. The paper does
  not say how its FC sees the pooled grid; averaging it keeps the FC at 512 inputs (and the
  parameter count at the paper's 39M, which a flattened 3x4x4 grid would not).
"""
from typing import List, Mapping, Sequence, Tuple

import torch
import torch.nn as nn

from models.frame_nets import BACKBONES, FRAME_NET_DEPTHS, first_conv_name, replace_first_conv
from models.safe_load import CheckpointError
from models.two_stream_init import imagenet_state_dict

TWO_STREAM_DEPTHS = FRAME_NET_DEPTHS  # 22: GoogLeNet (Inception-v1); the others: ResNet-18/34/50
FUSED_STEPS = 5
FUSED_CHANNELS = 512
RGB_FLOW_CHANNELS = 5
GOOGLENET_STAGES = ('conv1', 'maxpool1', 'conv2', 'conv3', 'maxpool2', 'inception3a', 'inception3b', 'maxpool3',
                    'inception4a', 'inception4b', 'inception4c', 'inception4d', 'inception4e', 'maxpool4',
                    'inception5a', 'inception5b')
RESNET_STAGES = ('conv1', 'bn1', 'relu', 'maxpool', 'layer1', 'layer2', 'layer3', 'layer4')


def torchvision_arch(depth: int) -> str:
    """The torchvision ImageNet network of a two-stream ``model_depth``: googlenet or resnetN."""
    return 'googlenet' if depth == 22 else f'resnet{depth}'


def _torchvision_net(depth: int) -> Tuple[nn.Module, Sequence[str]]:
    if depth not in BACKBONES:
        raise ValueError(f"two-stream models have no depth {depth!r}: choose one of "
                         f"{', '.join(map(str, TWO_STREAM_DEPTHS))}")
    return BACKBONES[depth](), GOOGLENET_STAGES if depth == 22 else RESNET_STAGES


class Trunk2d(nn.Module):
    """A torchvision ImageNet network up to its last feature map: N x C x H x W -> N x D x h x w.

    Its modules keep torchvision's names (``conv1.conv.weight``, ``inception5b...``,
    ``layer4...``), so an ImageNet state_dict maps onto it key by key.
    """

    def __init__(self, depth: int, in_channels: int = 3):
        super().__init__()
        net, stages = _torchvision_net(depth)
        self.out_channels = net.fc.in_features
        for name in stages:
            self.add_module(name, getattr(net, name))
        if in_channels != 3:
            nn.init.kaiming_normal_(replace_first_conv(self, in_channels).weight, mode='fan_out', nonlinearity='relu')

    def first_conv(self) -> nn.Conv2d:
        """The stem convolution (the one the cross-modality initialisation rewrites)."""
        return self.get_submodule(first_conv_name(self))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self.children():
            x = module(x)
        return x


def snapshots(n_frames: int, steps: int, flow_frames: int) -> List[Tuple[int, int]]:
    """(RGB frame, first flow frame) of ``steps`` snapshots spread evenly over a clip of ``n_frames``.

    Snapshot k is centred on frame (2k + 1) T / (2 steps); its ``flow_frames`` flow frames
    start ``flow_frames // 2`` before it, moved inside the clip where they would leave it.
    A 50-frame clip gives the paper's 3D-fused input: RGB frames 5, 15, ..., 45 (10 apart)
    and flow frames 0-9, 10-19, ..., 40-49 (50 in all).
    """
    if n_frames < flow_frames:
        raise ValueError(f'a clip of {n_frames} frames is shorter than the {flow_frames} flow frames '
                         f'a snapshot stacks: use --sample_duration {flow_frames} or more')
    out = []
    for k in range(steps):
        centre = (2 * k + 1) * n_frames // (2 * steps)
        out.append((centre, min(max(centre - flow_frames // 2, 0), n_frames - flow_frames)))
    return out


def split_snapshots(x: torch.Tensor, steps: int, flow_frames: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """N x 5 x T x H x W clips -> (N x steps x 3 x H x W RGB frames, N x steps x 2L x H x W flow stacks)."""
    if x.dim() != 5 or x.shape[1] != RGB_FLOW_CHANNELS:
        raise ValueError(f'two-stream models take N x 5 x T x H x W clips (RGB + flow u, v: --input_type '
                         f'rgb_flow), not {list(x.shape)}')
    rgb, flow = [], []
    for centre, start in snapshots(x.shape[2], steps, flow_frames):
        rgb.append(x[:, :3, centre])
        flow.append(x[:, 3:, start:start + flow_frames].transpose(1, 2).flatten(1, 2))  # u1, v1, u2, v2, ...
    return torch.stack(rgb, 1), torch.stack(flow, 1)


class _Streams(nn.Module):
    """The two 2D streams and the ``--ft_begin_module`` stages they share."""

    def __init__(self, depth: int, flow_frames: int):
        super().__init__()
        if int(flow_frames) != flow_frames or flow_frames < 1:
            raise ValueError(f'flow_frames must be a positive integer, not {flow_frames!r}')
        self.depth, self.flow_frames = depth, flow_frames
        self.rgb = Trunk2d(depth, 3)
        self.flow = Trunk2d(depth, 2 * flow_frames)

    def stream_maps(self, x: torch.Tensor, steps: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """Each stream's last feature maps of every snapshot: two N x steps x D x h x w tensors."""
        rgb, flow = split_snapshots(x, steps, self.flow_frames)
        n = x.shape[0]
        rgb_maps = self.rgb(rgb.flatten(0, 1))
        flow_maps = self.flow(flow.flatten(0, 1))
        return rgb_maps.unflatten(0, (n, steps)), flow_maps.unflatten(0, (n, steps))

    def load_imagenet(self, weights: Mapping[str, torch.Tensor], source: str = 'ImageNet weights') -> None:
        """Both streams from a torchvision ImageNet state_dict (heads left out); the flow stream's first
        conv by cross-modality initialisation (``models.two_stream_init``). ``source`` names it in errors."""
        try:
            self.load_state_dict(imagenet_state_dict(self, weights))
        except CheckpointError as e:
            raise CheckpointError(f'{source} (for torchvision {torchvision_arch(self.depth)}): {e}') from e

    def fine_tune_modules(self) -> List[Tuple[str, nn.Module]]:
        """``--ft_begin_module`` names: the trunk's stages (each both streams' module), then the head's."""
        stages = [(name, nn.ModuleList([module, getattr(self.flow, name)]))
                  for name, module in self.rgb.named_children()]
        return stages + [(name, m) for name, m in self.named_children() if name not in ('rgb', 'flow')]


class TwoStream(_Streams):
    """The two-stream network trained end to end: one RGB frame + L flow frames, logits averaged."""

    def __init__(self, n_classes: int = 400, depth: int = 22, flow_frames: int = 10, dropout: float = 0.5):
        super().__init__(depth, flow_frames)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * self.rgb.out_channels, n_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """N x 2D: the RGB and the flow stream's pooled features, concatenated (the input of ``fc``)."""
        rgb, flow = self.stream_maps(x, 1)
        return torch.cat([torch.flatten(self.avgpool(rgb[:, 0]), 1), torch.flatten(self.avgpool(flow[:, 0]), 1)], 1)

    def stream_logits(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """(RGB logits, flow logits), whose mean is ``forward``'s output (``fc`` holds both classifiers, halved)."""
        features = self.dropout(self.forward_features(x))
        d = self.rgb.out_channels
        rgb = nn.functional.linear(features[:, :d], 2 * self.fc.weight[:, :d], self.fc.bias)
        flow = nn.functional.linear(features[:, d:], 2 * self.fc.weight[:, d:], self.fc.bias)
        return rgb, flow

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.forward_features(x)))


class FusedTwoStream(_Streams):
    """The 3D-fused two-stream network: 5 snapshots, feature maps fused by a 3D convolution."""

    def __init__(self, n_classes: int = 400, depth: int = 22, flow_frames: int = 10, dropout: float = 0.5,
                 steps: int = FUSED_STEPS):
        super().__init__(depth, flow_frames)
        self.steps = steps
        self.fusion = nn.Sequential(
            nn.Conv3d(2 * self.rgb.out_channels, FUSED_CHANNELS, 3, padding=1, bias=False),
            nn.BatchNorm3d(FUSED_CHANNELS), nn.ReLU(inplace=True), nn.MaxPool3d(3, stride=2, padding=1))
        nn.init.kaiming_normal_(self.fusion[0].weight, mode='fan_out', nonlinearity='relu')  # Gaussian, as the paper
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(FUSED_CHANNELS, n_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """N x 512: the fused map after the 3D max pool, averaged (the input of ``fc``)."""
        rgb, flow = self.stream_maps(x, self.steps)
        fused = torch.cat([rgb, flow], 2).transpose(1, 2)  # N x 2D x steps x h x w
        return torch.flatten(self.avgpool(self.fusion(fused)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.forward_features(x)))


def two_stream(model: str, model_depth: int, n_classes: int, n_input_channels: int, flow_frames: int) -> nn.Module:
    """``two_stream`` or ``fused_two_stream`` from ``generate_model``'s options."""
    if n_input_channels != RGB_FLOW_CHANNELS:
        raise ValueError(f'{model} takes RGB + flow clips (--input_type rgb_flow): n_input_channels must be '
                         f'{RGB_FLOW_CHANNELS}, not {n_input_channels}')
    cls = TwoStream if model == 'two_stream' else FusedTwoStream
    return cls(n_classes=n_classes, depth=model_depth, flow_frames=flow_frames)
