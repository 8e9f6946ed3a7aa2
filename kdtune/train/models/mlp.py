"""The paper's MLP (Abnar et al., appendix F): fully connected layers on the flattened input."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from kdtune.train.data.base import DataInfo
from kdtune.train.models import MODELS
from kdtune.train.models.layers import Dropout


@MODELS.register("mlp")
class MLP(nn.Module):
    """``len(hidden) + 1`` linear layers with ReLU (optionally batch norm) and dropout.

    Features: the last hidden layer's activations.
    """

    kinds: ClassVar[tuple[str, ...]] = ("image", "points", "set")

    def __init__(
        self, info: DataInfo, dropout: float = 0.0, hidden: Sequence[int] = (512, 256), batch_norm: bool = False
    ) -> None:
        super().__init__()
        sizes = [math.prod(info.input_shape), *hidden]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(sizes))
        self.norms = nn.ModuleList((nn.BatchNorm1d(b) if batch_norm else nn.Identity()) for b in hidden)
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(sizes[-1], info.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = x.flatten(1)
        for layer, norm in zip(self.hidden, self.norms, strict=True):
            h = self.dropout(norm(torch.relu(layer(h))))
        return self.out(h), h
