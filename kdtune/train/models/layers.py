"""Layers shared by the models. ``Dropout`` is the one every model uses, so that seed-batched training
(``execution.seeds_per_trial``) can give each seed its own dropout masks: inside :func:`dropout_keys` (entered around
each training forward pass) a mask is a pure function of (the seed's key, the training step, the index of the dropout
call in the pass, the element's position), by integer hashing on tensors, with no global random state: a seed's masks
are the same alone or vmapped among other seeds. Outside that context a ``Dropout`` behaves as ``nn.Dropout``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

_MASK32 = 0xFFFFFFFF


def hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mixing function (Wellons' ``lowbias32``) applied elementwise to int64 tensors
    holding values in [0, 2³²); the result is in the same range. Products wrap; only the low 32 bits are kept."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


@dataclass
class DropoutKeys:
    """The key context of one forward pass: the seed's key (an int64 tensor, batched under vmap), the
    training step, and how many keyed dropout calls the pass has made so far."""

    key: torch.Tensor
    step: int
    calls: int = field(default=0)


_KEYS: contextvars.ContextVar[DropoutKeys | None] = contextvars.ContextVar("kdtune_dropout_keys", default=None)


@contextlib.contextmanager
def dropout_keys(key: torch.Tensor, step: int) -> Iterator[None]:
    """Within: every ``Dropout`` in training mode draws its mask from (``key``, ``step``, call index, position)."""
    token = _KEYS.set(DropoutKeys(key, step))
    try:
        yield
    finally:
        _KEYS.reset(token)


def keep_mask(key: torch.Tensor, step: int, call: int, shape: torch.Size, p: float, device: torch.device) -> torch.Tensor:
    """The boolean keep-mask of one keyed dropout call: element i is kept when a hash of (key, step, call, i),
    read as a uniform 32-bit number, is at least ``p·2³²``. The (key, step, call) part is mixed once per call
    (scalar work), then with each element's spread-out position (one :func:`hash32`)."""
    head = hash32(hash32(hash32(key) ^ (step & _MASK32)) ^ (call * 0x9E3779B9 & _MASK32))  # scalar work
    return hash32(_positions(shape, device) ^ head) >= int(p * (1 << 32))


_CACHED_POSITIONS = 1 << 20  # elements: larger (rare) shapes are not kept, so varying token widths cannot pile up memory


def _positions(shape: torch.Size, device: torch.device) -> torch.Tensor:
    """Element positions, spread over 32 bits (times an odd constant) so that one mixing round decorrelates
    neighbours; kept for shapes up to ``_CACHED_POSITIONS`` elements (the same shapes recur every step)."""
    return _cached_positions(shape, device) if shape.numel() <= _CACHED_POSITIONS else _spread(shape, device)


def _spread(shape: torch.Size, device: torch.device) -> torch.Tensor:
    return (torch.arange(shape.numel(), device=device, dtype=torch.int64).view(shape) * 0x9E3779B1) & _MASK32


_cached_positions = functools.lru_cache(maxsize=32)(_spread)


class Dropout(nn.Dropout):
    """Drop-in replacement of ``nn.Dropout`` for kdtune models: keyed masks inside :func:`dropout_keys`
    (scaled by ``1/(1-p)`` like ``nn.Dropout``), ``nn.Dropout`` itself elsewhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keys = _KEYS.get()
        if keys is None or not self.training or self.p == 0:
            return super().forward(x)
        keys.calls += 1
        if self.p >= 1:
            return x * 0
        keep = keep_mask(keys.key.to(x.device), keys.step, keys.calls, x.shape, self.p, x.device)
        return torch.where(keep, x * (1.0 / (1.0 - self.p)), 0.0)
