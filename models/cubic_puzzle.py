"""Space-Time Cubic Puzzles (Kim, Cho & Kweon, AAAI 2019): the 4-tower siamese network.

A puzzle is 4 pieces of one video, shuffled by one of the 24 permutations and, half of the
time, all turned upside down. The network applies one shared backbone to every piece,
concatenates the pooled features in slot order and predicts ``perm_index + 24 * flipped``
(48 classes). ``CubicPuzzleNet.backbone`` is a normal model without its head, so its
``state_dict()`` is what fine-tuning loads.
"""
import itertools
from typing import Tuple

import torch
import torch.nn as nn

from models.factory import head_name

N_PIECES = 4
PERMUTATIONS: Tuple[Tuple[int, ...], ...] = tuple(itertools.permutations(range(N_PIECES)))
N_PERMUTATIONS = len(PERMUTATIONS)
N_PUZZLE_CLASSES = 2 * N_PERMUTATIONS  # every permutation, upright or upside down
PERMUTATION_INDEX = {perm: i for i, perm in enumerate(PERMUTATIONS)}


def puzzle_label(perm_index: int, flipped: bool) -> int:
    """The class of a puzzle: its permutation's index, plus 24 when it is upside down."""
    return perm_index + N_PERMUTATIONS * int(flipped)


def split_label(label: int) -> Tuple[Tuple[int, ...], bool]:
    """The permutation and the upside-down flag a class stands for."""
    return PERMUTATIONS[label % N_PERMUTATIONS], label >= N_PERMUTATIONS


def puzzle_class_names() -> Tuple[str, ...]:
    """``perm00`` ... ``perm23``, then ``perm00-flipped`` ... ``perm23-flipped``."""
    upright = tuple(f'perm{i:02d}' for i in range(N_PERMUTATIONS))
    return upright + tuple(f'{name}-flipped' for name in upright)


class CubicPuzzleNet(nn.Module):
    """A shared backbone per piece, features concatenated in slot order, one linear classifier."""

    def __init__(self, backbone: nn.Module, n_pieces: int = N_PIECES, n_classes: int = N_PUZZLE_CLASSES):
        super().__init__()
        name = head_name(backbone)
        self.feature_dim: int = getattr(backbone, name).in_features
        setattr(backbone, name, nn.Identity())
        self.backbone = backbone
        self.n_pieces = n_pieces
        self.classifier = nn.Linear(n_pieces * self.feature_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N * n_pieces) x C x T x H x W pieces (puzzle by puzzle) to N x n_classes logits."""
        if x.shape[0] % self.n_pieces:
            raise ValueError(f'{x.shape[0]} pieces do not make puzzles of {self.n_pieces}')
        features = self.backbone(x)
        return self.classifier(features.reshape(-1, self.n_pieces * self.feature_dim))
