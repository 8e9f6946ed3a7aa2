"""Model registry. Every model maps inputs to ``(logits, penultimate_features)``.

A model class takes ``(info: DataInfo, dropout: float = 0.0, **params)``; add one with a file in
this folder and ``@MODELS.register("name")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from kdtune.data.base import DataInfo
from kdtune.registry import Registry

MODELS: Registry[type[nn.Module]] = Registry("model")

from kdtune.models import cnn, mlp  # noqa: E402,F401  (registrations)


def build_model(arch: str, info: DataInfo, dropout: float = 0.0, params: Mapping[str, Any] | None = None) -> nn.Module:
    """Instantiate the registered model ``arch`` for data described by ``info``."""
    return MODELS.get(arch)(info, dropout=dropout, **dict(params or {}))
