"""DGCNN (Wang et al. 2019): EdgeConv layers on a k-nearest-neighbour graph recomputed in every
layer's feature space, on point clouds or particle sets of shape (B, P, F) (internally (B, C, P)).

Everything is batched tensor code (pairwise distances by matrix products, ``topk``, ``gather``)
with no data-dependent Python control flow, so a stack of models runs under ``torch.func.vmap``.
"""

from __future__ import annotations

import itertools
from typing import ClassVar

import torch
from torch import nn

from kdtune.train.data.base import DataInfo
from kdtune.train.models import MODELS
from kdtune.train.models.layers import Dropout

SLOPE = 0.2  # the LeakyReLU slope of the paper's implementation


def knn(h: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (B, P, k) of each point's ``k`` nearest other points (itself excluded) in ``h`` (B, C, P).

    Ties (e.g. duplicated points) are broken by ``topk``; the graph is the same for a translated
    ``h`` up to float rounding, since the distances are computed on centred features.
    """
    h = h - h.mean(dim=2, keepdim=True)
    sq = (h * h).sum(dim=1)
    dist = sq.unsqueeze(2) - 2 * h.transpose(1, 2) @ h + sq.unsqueeze(1)
    eye = torch.eye(h.shape[2], dtype=torch.bool, device=h.device)
    return dist.masked_fill(eye, float("inf")).topk(k, dim=-1, largest=False, sorted=False).indices


def neighbours(h: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """The features (B, C, P, k) of the neighbours ``idx`` (B, P, k) of every point of ``h`` (B, C, P)."""
    b, c, p = h.shape
    k = idx.shape[-1]
    return torch.gather(h, 2, idx.reshape(b, 1, p * k).expand(b, c, p * k)).reshape(b, c, p, k)


class EdgeConv(nn.Module):
    """max_j h(x_i, x_j − x_i) over the k nearest neighbours j of i in the input's feature space, h a linear map
    W = [W₁ W₂], batch norm and LeakyReLU, on features (B, C, P); ``relative_only``: h(x_j − x_i), invariant to
    translating the inputs. W₁x_i + W₂(x_j − x_i) = (W₁ − W₂)x_i + W₂x_j: the maps run on the P points, not the P·k
    edges, and only their outputs are gathered per edge (the paper's 1×1 convolution's values, up to float rounding).
    """

    def __init__(self, d_in: int, d_out: int, k: int, relative_only: bool = False) -> None:
        super().__init__()
        self.k, self.d_in, self.relative_only = k, d_in, relative_only
        self.linear = nn.Linear(d_in if relative_only else 2 * d_in, d_out, bias=False)
        self.norm = nn.BatchNorm2d(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.linear.weight
        w_nb = w[:, -self.d_in :]  # W₂, acting on x_j − x_i
        w_centre = -w_nb if self.relative_only else w[:, : self.d_in] - w_nb
        e = neighbours(w_nb @ x, knn(x, self.k)) + (w_centre @ x).unsqueeze(-1)  # (B, C', P, k)
        # LeakyReLU is increasing, so it commutes with the max: applied after it, on k times fewer values;
        # max (not amax) has the cheaper backward (to the arg-max only, not shared among ties)
        return nn.functional.leaky_relu(self.norm(e).max(dim=-1).values, SLOPE)  # (B, C', P)


@MODELS.register("dgcnn")
class DGCNN(nn.Module):
    """``edge_convs`` EdgeConv layers of widths ``width``·(1, 1, 2, 4, 8, …) (64, 64, 128, 256 by default, as in the
    paper; 2 layers for the teacher′ control), their concatenated outputs through a 1×1 convolution to ``emb`` channels
    (0, the default: 16·``width``), max-pooled over the points, then ``head_layers`` hidden layers of 8·``width``,
    4·``width``, … (2 by default, as in the paper) with batch norm, LeakyReLU and dropout. ``k`` neighbours (clamped to
    P − 1; a point is not its own neighbour). Invariant to permuting the points; with ``translation_invariant`` (the
    first layer's edge feature x_j − x_i only) also to translating them (up to float rounding). Features: the head's
    last hidden layer.
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
        self.translation_invariant = translation_invariant
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
        h = x.transpose(1, 2)  # (B, F, P)
        if self.translation_invariant:  # no change to x_j − x_i, but less rounding error under translation
            h = h - h.mean(dim=2, keepdim=True)
        outputs = []
        for conv in self.convs:
            h = conv(h)
            outputs.append(h)
        e = self.embed(torch.cat(outputs, dim=1))  # (B, emb, P)
        h = nn.functional.leaky_relu(e.max(dim=-1).values, SLOPE)
        for layer in self.head:
            h = self.dropout(nn.functional.leaky_relu(layer(h), SLOPE))
        return self.out(h), h
