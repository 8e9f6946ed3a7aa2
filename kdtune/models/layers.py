"""Layers shared by the models. ``Dropout`` is the one every model uses, so that seed-batched
training (``execution.seeds_per_trial``) can give each seed its own dropout masks."""

from __future__ import annotations

from torch import nn


class Dropout(nn.Dropout):
    """Drop-in replacement of ``nn.Dropout`` for kdtune models."""
