"""DGCNN (Wang et al. 2019): EdgeConv layers on a k-nearest-neighbour graph recomputed in every
layer's feature space, on point clouds or particle sets of shape (B, P, F).

Everything is batched tensor code (pairwise distances by matrix products, ``topk``, ``gather``)
with no data-dependent Python control flow, so a stack of models runs under ``torch.func.vmap``.
"""

from __future__ import annotations

import itertools
from typing import ClassVar

import torch
from torch import nn

from kdtune.data.base import DataInfo
from kdtune.models import MODELS
from kdtune.models.layers import Dropout

SLOPE = 0.2  # the LeakyReLU slope of the paper's implementation


def knn(h: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (B, P, k) of each point's ``k`` nearest other points (itself excluded) in ``h`` (B, P, C).

    Ties (e.g. duplicated points) are broken by ``topk``; the graph is the same for a translated
    ``h`` up to float rounding, since the distances are computed on centred features.
    """
    h = h - h.mean(dim=1, keepdim=True)
    sq = (h * h).sum(dim=-1)
    dist = sq.unsqueeze(2) - 2 * h @ h.transpose(1, 2) + sq.unsqueeze(1)
    eye = torch.eye(h.shape[1], dtype=torch.bool, device=h.device)
    return dist.masked_fill(eye, float("inf")).topk(k, dim=-1, largest=False).indices


def neighbours(h: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The features (B, P, k, C) of the neighbours ``idx`` (B, P, k) of every point of ``h`` (B, P, C)."""
    b, p, c = h.shape
    k = idx.shape[-1]
    flat = idx.reshape(b, p * k, 1).expand(b, p * k, c)
    return torch.gather(h, 1, flat).reshape(b, p, k, c)


class EdgeConv(nn.Module):
    """max_j h(x_i, x_j − x_i) over the k nearest neighbours j of i in the input's feature space, with
    h a 1×1 convolution, batch norm and LeakyReLU. ``relative_only`` drops x_i from the edge
    feature (h(x_j − x_i)), which makes the layer invariant to translating the inputs."""

    def __init__(self, d_in: int, d_out: int, k: int, relative_only: bool = False) -> None:
        super().__init__()
        self.k, self.relative_only = k, relative_only
        self.conv = nn.Conv2d(d_in if relative_only else 2 * d_in, d_out, kernel_size=1, bias=False)
        self.norm = nn.BatchNorm2d(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nb = neighbours(x, knn(x, self.k))  # (B, P, k, C)
        centre = x.unsqueeze(2).expand_as(nb)
        edge = nb - centre if self.relative_only else torch.cat([centre, nb - centre], dim=-1)
        e = self.norm(self.conv(edge.permute(0, 3, 1, 2)))  # (B, C', P, k)
        # LeakyReLU is increasing, so it commutes with the max: applied after it, on k times fewer values
        return nn.functional.leaky_relu(e.amax(dim=-1), SLOPE).transpose(1, 2)  # (B, P, C')


@MODELS.register("dgcnn")
class DGCNN(nn.Module):
    """``edge_convs`` EdgeConv layers of widths ``width``·(1, 1, 2, 4, 8, …) (64, 64, 128, 256 by
    default, as in the paper; 2 layers for the teacher′ control), their concatenated outputs through
    a 1×1 convolution to ``emb`` channels (0, the default: 16·``width``), max-pooled over the points,
    then ``head_layers`` hidden layers of 8·``width``, 4·``width``, … (2 by default, as in the paper)
    with batch norm, LeakyReLU and dropout. ``k`` neighbours (clamped to P − 1; the point itself is
    not its own neighbour).

    ``translation_invariant`` makes the first layer's edge feature x_j − x_i only, so the model is
    invariant to translating all input points (up to float rounding); the default h(x_i, x_j − x_i)
    is not. Either way the model is invariant to permuting the points. Features: the last hidden
    layer of the head.
    """

    kinds: ClassVar[tuple[str, ...]] = ("points", "set")

    def __init__(
        self,
        info: DataInfo,
        dropout: float = 0.0,
        edge_convs: int = 4,
        width: int = 64,
        k: int = 20,
        emb: int = 0,
        head_layers: int = 2,
        translation_invariant: bool = False,
    ) -> None:
        super().__init__()
        for name, value, least in (("edge_convs", edge_convs, 1), ("width", width, 1), ("k", k, 1), ("emb", emb, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")
        if not isinstance(head_layers, int) or isinstance(head_layers, bool) or not 0 <= head_layers <= 4:
            raise ValueError(f"head_layers must be an integer from 0 to 4, got {head_layers!r}")
        if not isinstance(translation_invariant, bool):
            raise ValueError(f"translation_invariant must be true or false, got {translation_invariant!r}")
        if len(info.input_shape) != 2 or info.input_shape[0] < 2:
            raise ValueError(f"dgcnn reads clouds shaped (points >= 2, features); the data's input shape is {info.input_shape}")
        points, d_in = info.input_shape
        k = min(k, points - 1)
        widths = [width * (1 if i == 0 else 2 ** (i - 1)) for i in range(edge_convs)]
        self.convs = nn.ModuleList(
            EdgeConv(a, b, k, relative_only=translation_invariant and i == 0)
            for i, (a, b) in enumerate(itertools.pairwise([d_in, *widths]))
        )
        emb = emb or 16 * width
        self.embed = nn.Sequential(nn.Conv1d(sum(widths), emb, kernel_size=1, bias=False), nn.BatchNorm1d(emb))
        hidden = [width * 2 ** (3 - i) for i in range(head_layers)]
        self.head = nn.ModuleList(
            nn.Sequential(nn.Linear(a, b, bias=False), nn.BatchNorm1d(b)) for a, b in itertools.pairwise([emb, *hidden])
        )
        self.dropout = Dropout(dropout)
        self.out = nn.Linear([emb, *hidden][-1], info.num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs, h = [], x
        for conv in self.convs:
            h = conv(h)
            outputs.append(h)
        e = self.embed(torch.cat(outputs, dim=-1).transpose(1, 2))  # (B, emb, P)
        h = nn.functional.leaky_relu(e.amax(dim=-1), SLOPE)
        for layer in self.head:
            h = self.dropout(nn.functional.leaky_relu(layer(h), SLOPE))
        return self.out(h), h
