"""Deep Sets (Zaheer et al. 2017) on point clouds and particle sets, inputs of shape (B, P, F).

``deepsets_inv`` is ρ(pool_i φ(x_i)): exactly invariant to permuting the P elements (up to the float rounding of a sum
in another order). ``deepsets_equiv`` stacks permutation-equivariant layers Λx + Γ·pool(x)1ᵀ (the paper's PermEqui
layers), then pools over the set and classifies: its layers are equivariant and its output invariant.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Mapping
from typing import ClassVar

import torch
from torch import nn

from kdtune.train.data.base import DataInfo
from kdtune.train.models import MODELS
from kdtune.train.models.layers import Dropout

POOLS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sum": lambda h: h.sum(dim=1),
    "mean": lambda h: h.mean(dim=1),
    "max": lambda h: h.amax(dim=1),
}
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {"relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh}


def _check(name: str, value: object, allowed: Mapping[str, object]) -> None:
    """A ValueError naming ``value`` and the allowed names if it is not one of them."""
    if value not in allowed:
        raise ValueError(f"{name} {value!r} is not one of {', '.join(map(repr, allowed))}")


def _check_count(name: str, value: int, least: int) -> None:
    """A ValueError unless ``value`` is an integer >= ``least``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        raise ValueError(f"{name} must be an integer >= {least}, got {value!r}")


def _element_layers(
    info: DataInfo, width: int, counts: tuple[tuple[str, int, int], ...], pool: str, activation: str, layer: Callable
) -> nn.Sequential:
    """Check the parameters (``counts``: (name, value, least), the number of layers second) and build that many
    ``layer(d_in, width)`` + activation blocks applied to every element of the set."""
    _check("pool", pool, POOLS)
    _check("activation", activation, ACTIVATIONS)
    for name, value, least in counts:
        _check_count(name, value, least)
    if len(info.input_shape) != 2:
        raise ValueError(f"Deep Sets read sets shaped (points, features); the data's input shape is {info.input_shape}")
    sizes = [int(info.input_shape[-1]), *[width] * counts[1][1]]
    return nn.Sequential(*(nn.Sequential(layer(a, b), ACTIVATIONS[activation]()) for a, b in itertools.pairwise(sizes)))


def _head(width: int, layers: int, num_classes: int, activation: str, dropout: float) -> tuple[nn.Module, nn.Module]:
    """``layers`` hidden (dropout, linear, activation) blocks of ``width`` and the output layer."""
    hidden = nn.Sequential(
        *(nn.Sequential(Dropout(dropout), nn.Linear(width, width), ACTIVATIONS[activation]()) for _ in range(layers))
    )
    return hidden, nn.Sequential(Dropout(dropout), nn.Linear(width, num_classes))


@MODELS.register("deepsets_inv")
class DeepSetsInvariant(nn.Module):
    """ρ(pool_i φ(x_i)): φ is ``phi_layers`` linear + activation layers of ``width`` applied to every
    element, ``pool`` is sum, mean or max over the set, ρ is ``rho_layers`` hidden layers of ``width``
    and a linear output. Features: ρ's last hidden layer (the pooled vector if ``rho_layers`` is 0).
    """

    kinds: ClassVar[tuple[str, ...]] = ("points", "set")

    def __init__(
        self,
        info: DataInfo,
        dropout: float = 0.0,
        width: int = 256,
        phi_layers: int = 3,
        rho_layers: int = 1,
        pool: str = "sum",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        counts = (("width", width, 1), ("phi_layers", phi_layers, 1), ("rho_layers", rho_layers, 0))
        self.phi = _element_layers(info, width, counts, pool, activation, nn.Linear)
        self.pool = POOLS[pool]
        self.rho, self.out = _head(width, rho_layers, info.num_classes, activation, dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.rho(self.pool(self.phi(x)))
        return self.out(features), features


class PermEquivariant(nn.Module):
    """One permutation-equivariant layer ``Λx + Γ·pool(x)1ᵀ`` on sets (B, P, F): Λ acts on every
    element (with a bias), Γ on the set's pooled vector (no bias), added to every element."""

    def __init__(self, d_in: int, d_out: int, pool: str = "max") -> None:
        super().__init__()
        _check("pool", pool, POOLS)
        self.pool = POOLS[pool]
        self.lam = nn.Linear(d_in, d_out)
        self.gamma = nn.Linear(d_in, d_out, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lam(x) + self.gamma(self.pool(x)).unsqueeze(1)


@MODELS.register("deepsets_equiv")
class DeepSetsEquivariant(nn.Module):
    """``layers`` PermEqui layers of ``width`` (each followed by the activation), a pooling over the
    set (``pool``, which the PermEqui layers also use), then ``head_layers`` hidden layers and a
    linear output. ``equivariant(x)`` gives the last equivariant layer's output (B, P, width).
    Features: the head's last hidden layer (the pooled vector if ``head_layers`` is 0).
    """

    kinds: ClassVar[tuple[str, ...]] = ("points", "set")

    def __init__(
        self,
        info: DataInfo,
        dropout: float = 0.0,
        width: int = 256,
        layers: int = 3,
        head_layers: int = 1,
        pool: str = "max",
        activation: str = "relu",
    ) -> None:
        super().__init__()
        counts = (("width", width, 1), ("layers", layers, 1), ("head_layers", head_layers, 0))
        self.layers = _element_layers(info, width, counts, pool, activation, functools.partial(PermEquivariant, pool=pool))
        self.pool = POOLS[pool]
        self.head, self.out = _head(width, head_layers, info.num_classes, activation, dropout)

    def equivariant(self, x: torch.Tensor) -> torch.Tensor:
        """The per-element output of the equivariant layers, (B, P, width)."""
        return self.layers(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.head(self.pool(self.equivariant(x)))
        return self.out(features), features
