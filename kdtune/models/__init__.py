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

from kdtune.models import cnn, lstm, mlp, transformer  # noqa: E402,F401  (registrations)


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
