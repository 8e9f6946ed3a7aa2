"""The search spaces of a sweep's ``tune:`` section, as read by :mod:`kdtune.spec` (the types live in
:mod:`kdtune.config`, below the planner; this module keeps their old import path)."""

from kdtune.config import (
    DIRECTIONS,
    INT_SETTINGS,
    KINDS,
    LOSS_SETTINGS,
    TRAIN_SETTINGS,
    AshaSpec,
    Distribution,
    SearchSpace,
    TuneSpec,
)

__all__ = [
    "DIRECTIONS",
    "INT_SETTINGS",
    "KINDS",
    "LOSS_SETTINGS",
    "TRAIN_SETTINGS",
    "AshaSpec",
    "Distribution",
    "SearchSpace",
    "TuneSpec",
]
