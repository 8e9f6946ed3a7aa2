"""Data containers: every split is a set of tensors that can live on the trial's device."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

Inputs = torch.Tensor | dict[str, torch.Tensor]


def take(inputs: Inputs, index: torch.Tensor | slice) -> Inputs:
    """Rows ``index`` of a tensor or of every tensor in a dict (a batch is a slice or an index)."""
    if isinstance(inputs, dict):
        return {k: v[index] for k, v in inputs.items()}
    return inputs[index]


def to_device(inputs: Inputs, device: torch.device | str) -> Inputs:
    """Move a tensor or a dict of tensors to ``device``."""
    if isinstance(inputs, dict):
        return {k: v.to(device) for k, v in inputs.items()}
    return inputs.to(device)


@dataclass
class Split:
    """One split: inputs, integer labels, and optional per-example metadata (e.g. attractor counts)."""

    x: Inputs
    y: torch.Tensor
    meta: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> Split:
        """A copy of this split on ``device``."""
        return Split(to_device(self.x, device), self.y.to(device), {k: v.to(device) for k, v in self.meta.items()})


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know about its inputs and outputs."""

    kind: str  # "image" or "tokens"
    input_shape: tuple[int, ...]
    num_classes: int  # classes, or the vocabulary size for a language model
    extra: tuple[tuple[str, Any], ...] = ()
    task: str = "classification"  # a kdtune.train.tasks.TASKS name

    def get(self, key: str, default: Any = None) -> Any:
        """A data-set specific value (e.g. ``vocab_size``)."""
        return dict(self.extra).get(key, default)


@dataclass
class DataBundle:
    """Train and validation splits plus every evaluation set (``val`` included; an uncorrupted eval set of
    the training or validation split is that split itself), on one device."""

    info: DataInfo
    train: Split
    val: Split
    evals: dict[str, Split]

    def to(self, device: torch.device | str) -> DataBundle:
        """A copy of the bundle with every tensor on ``device``."""
        train, val = self.train.to(device), self.val.to(device)
        evals = {k: (val if v is self.val else train if v is self.train else v.to(device)) for k, v in self.evals.items()}
        return DataBundle(self.info, train, val, evals)


def split_train_val(n: int, val_size: float | int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (train, val) of a fixed random hold-out of ``val_size`` (a fraction < 1 or a count)."""
    n_val = round(val_size * n) if isinstance(val_size, float) and val_size < 1 else int(val_size)
    if not 0 < n_val < n:
        raise ValueError(f"val_size {val_size} leaves no training or no validation data out of {n} examples")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_val:].sort().values, perm[:n_val].sort().values
