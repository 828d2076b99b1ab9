"""ConvNet+LSTM as "Quo Vadis, Action Recognition?" (Carreira & Zisserman, 2017) compares it.

A 2D ImageNet network (``backbone``; ``model_depth`` 22: torchvision's GoogLeNet, i.e.
Inception-v1 with batch normalisation after every convolution as in the paper, without its
auxiliary heads; 18, 34, 50: torchvision's ResNets) runs on every frame of the clip; its globally pooled features go through
one LSTM layer (``lstm``, 512 hidden units) and a linear classifier (``fc``, the head) on every
time step.

Output: in training mode N x n_classes x T logits, one prediction per step, which
``training.criterion_for``'s loss turns into the mean cross-entropy over all steps; in eval
mode N x n_classes, the last step's logits (``eval_output='last'``, as the paper tests) or the
mean over the steps (``'mean'``). ``forward_features`` gives the matching N x 512 hidden state
(the classifier is linear, so the mean of the logits is the classifier of the mean state).
The paper samples 1 frame in 5 of 25 fps video: ``--sample_t_stride 5``.
"""
from typing import List, Tuple

import torch
import torch.nn as nn

from models.frame_nets import BACKBONES, FRAME_NET_DEPTHS, replace_first_conv

LSTM_DEPTHS = FRAME_NET_DEPTHS  # 22: GoogLeNet (Inception-v1, the paper's); the others: ResNet-18/34/50
LSTM_EVAL_OUTPUTS = ('last', 'mean')
HIDDEN_SIZE = 512


def frame_backbone(depth: int, n_input_channels: int = 3) -> Tuple[nn.Module, int]:
    """(a torchvision 2D network returning N x F pooled features, F), randomly initialised."""
    if depth not in BACKBONES:
        raise ValueError(f"lstm has no depth {depth!r}: choose one of {', '.join(map(str, LSTM_DEPTHS))}")
    net = BACKBONES[depth]()
    n_features = net.fc.in_features
    net.fc = nn.Identity()
    if n_input_channels != 3:  # e.g. 2-channel optical flow: a new first convolution of the same shape
        replace_first_conv(net, n_input_channels)
    return net, n_features


class ConvLSTM(nn.Module):
    """A 2D network per frame, an LSTM over the frames, a classifier per step."""

    def __init__(self, n_classes: int = 400, n_input_channels: int = 3, depth: int = 22,
                 eval_output: str = 'last', hidden_size: int = HIDDEN_SIZE):
        super().__init__()
        if eval_output not in LSTM_EVAL_OUTPUTS:
            raise ValueError(f"lstm_eval must be one of {', '.join(LSTM_EVAL_OUTPUTS)}, not {eval_output!r}")
        self.eval_output = eval_output
        self.backbone, n_features = frame_backbone(depth, n_input_channels)
        self.lstm = nn.LSTM(n_features, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, n_classes)

    def imagenet_backbone(self) -> nn.Module:
        """The torchvision network ``--backbone_weights`` loads (torchvision's ImageNet keys; ``fc`` is an Identity)."""
        return self.backbone

    def fine_tune_modules(self) -> List[Tuple[str, nn.Module]]:
        """``--ft_begin_module`` names: the backbone's own top-level modules, then ``lstm`` and ``fc``."""
        trunk = [(name, m) for name, m in self.backbone.named_children() if name != 'fc']  # fc: an Identity
        return trunk + [('lstm', self.lstm), ('fc', self.fc)]

    def step_features(self, x: torch.Tensor) -> torch.Tensor:
        """N x C x T x H x W clips to the N x T x 512 LSTM outputs (hidden states) of every step."""
        n, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(n * t, c, h, w)
        pooled = self.backbone(frames).reshape(n, t, -1)
        return self.lstm(pooled)[0]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """N x 512: the hidden state whose classification is the eval output (last step, or mean over steps)."""
        states = self.step_features(x)
        return states[:, -1] if self.eval_output == 'last' else states.mean(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return self.fc(self.step_features(x)).transpose(1, 2)  # N x n_classes x T
        return self.fc(self.forward_features(x))
