"""ResNet-18 for small grey images, with circular padding: a simple approximation of the truly shift-invariant
ResNet of Chaman & Dokmanic (2021), which the symmetry-invariance paper uses (their adaptive polyphase sampling is not
implemented).

Exactly invariant (up to float rounding): with every stride 1 (``strides: [1, 1, 1, 1]``), to every circular shift
(each convolution is equivariant, the global average pooling invariant); with strides s₁…s₄, only to circular shifts by
multiples of s₁·s₂·s₃·s₄, and only if every stage's input size is divisible by its stride (not 28×28 with the default
(1, 2, 2, 2): its 7×7 map meets the last stride 2). Zero-filled translations are never exact symmetries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import nn

from kdtune.train.data.base import DataInfo
from kdtune.train.models import MODELS
from kdtune.train.models.layers import Dropout


def _conv(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, padding_mode="circular", bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with batch norm and an identity (or 1×1 convolution) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1, self.norm1 = _conv(c_in, c_out, 3, stride), nn.BatchNorm2d(c_out)
        self.conv2, self.norm2 = _conv(c_out, c_out, 3, 1), nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(_conv(c_in, c_out, 1, stride), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.norm1(self.conv1(x)))
        return torch.relu(self.norm2(self.conv2(h)) + self.shortcut(x))


@MODELS.register("resnet18")
class ResNet18(nn.Module):
    """ResNet-18 (BasicBlock, ``blocks`` [2, 2, 2, 2]) with a 3×3 stride-1 stem and no max-pool, for 12×12 to 32×32
    images. Stage widths ``width``·(1, 2, 4, 8) (64 as in the original; 16 is CPU-sized), ``strides`` the first block of
    each stage's stride. Every convolution pads circularly; see the module docstring for which shifts the model is
    exactly invariant to. Features: the globally average-pooled last stage.
    """

    kinds: ClassVar[tuple[str, ...]] = ("image",)

    def __init__(
        self,
        info: DataInfo,
        dropout: float = 0.0,
        width: int = 64,
        strides: Sequence[int] = (1, 2, 2, 2),
        blocks: Sequence[int] = (2, 2, 2, 2),
    ) -> None:
        super().__init__()
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}")
        for name, values in (("strides", strides), ("blocks", blocks)):
            if len(values) != 4 or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
                raise ValueError(f"{name} must list 4 positive integers (one per stage), got {list(values)}")
        if len(info.input_shape) != 3:
            raise ValueError(f"resnet18 reads images shaped (channels, height, width); the data's is {info.input_shape}")
        self.stem = nn.Sequential(_conv(info.input_shape[0], width, 3, 1), nn.BatchNorm2d(width), nn.ReLU())
        layers: list[nn.Module] = []
        c_in = width
        for stage, (stride, n) in enumerate(zip(strides, blocks, strict=True)):
            c_out = width * 2**stage
            layers += [BasicBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1) for i in range(n)]
            c_in = c_out
        self.layers = nn.Sequential(*layers)
        self.dropout = Dropout(dropout)
        self.out = nn.Linear(c_in, info.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.layers(self.stem(x)).mean(dim=(2, 3))
        return self.out(self.dropout(features)), features
