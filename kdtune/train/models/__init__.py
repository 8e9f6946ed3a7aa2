"""Model registry. Every model maps inputs to ``(logits, penultimate_features)``.

A model class takes ``(info: DataInfo, dropout: float = 0.0, **params)``; add one with a file in
this folder and ``@MODELS.register("name")``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from kdtune.registry import Registry
from kdtune.train.data.base import DataInfo

MODELS: Registry[type[nn.Module]] = Registry("model")

from kdtune.train.models import cnn, deepsets, dgcnn, lstm, mlp, resnet, transformer  # noqa: E402,F401  (registrations)


def build_model(arch: str, info: DataInfo, dropout: float = 0.0, params: Mapping[str, Any] | None = None) -> nn.Module:
    """Instantiate the registered model ``arch`` for data described by ``info``.

    A model class declares the tasks it serves (``tasks``, default classification) and the input
    kinds it reads (``kinds``); a mismatch is a ValueError naming both.
    """
    cls = MODELS.get(arch)
    tasks = getattr(cls, "tasks", ("classification",))
    kinds = getattr(cls, "kinds", (info.kind,))
    if info.task not in tasks or info.kind not in kinds:
        raise ValueError(
            f"model {arch!r} serves {'/'.join(tasks)} on {'/'.join(kinds)} inputs; the data is {info.task} on {info.kind}"
        )
    return cls(info, dropout=dropout, **dict(params or {}))


def example_inputs(info: DataInfo, batch: int = 2) -> torch.Tensor | dict[str, torch.Tensor]:
    """A small all-zero (images) or all-``<unk>`` (tokens, of unequal lengths) batch shaped like the data."""
    if info.kind == "tokens":
        width = min(3, info.input_shape[0])
        tokens = torch.ones(batch, width, dtype=torch.long)
        lengths = torch.tensor([max(1, width - i % width) for i in range(batch)])
        tokens[torch.arange(width) >= lengths[:, None]] = int(info.get("pad_id", 0))
        return {"tokens": tokens, "lengths": lengths}
    return torch.zeros(batch, *info.input_shape)


def check_model(arch: str, info: DataInfo, params: Mapping[str, Any] | None = None) -> None:
    """Build the model and run it on a small batch, so that parameters that only fail on data (a
    pooling window larger than the image, zero heads, negative widths) fail before any training."""
    with warnings.catch_warnings():  # e.g. "zero-element tensors": the error that follows says more
        warnings.simplefilter("ignore")
        model = build_model(arch, info, 0.0, params).eval()
        with torch.no_grad():
            logits, _ = model(example_inputs(info))
    if logits.shape[-1] != info.num_classes:
        raise ValueError(f"model {arch!r} returned {logits.shape[-1]} outputs for {info.num_classes} classes")
