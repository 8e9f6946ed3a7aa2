"""Shared fixtures: a tiny sweep on the embedded digits data that trains in seconds."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

TINY: dict[str, Any] = {
    "name": "tiny",
    "data": {"name": "digits", "eval_sets": ["test", "translated"]},
    "models": {
        "CNN": {"arch": "cnn", "params": {"channels": [4, 4, 8]}},
        "MLP": {"arch": "mlp", "params": {"hidden": [32]}},
    },
    "train": {"epochs": 2, "batch_size": 128, "lr": 0.01},
    "distill": {"schedule": {"name": "cosine_restarts", "first_epochs": 1}},
    "grid": {"students": ["MLP"], "teachers": ["data", "CNN"], "temperature": [4], "w_hard": [0], "w_soft": [1], "seeds": 2},
    "outputs": {"feature_examples": 50},
}


@pytest.fixture
def tiny_raw() -> dict[str, Any]:
    """A fresh copy of the tiny sweep mapping."""
    return copy.deepcopy(TINY)


@pytest.fixture
def tiny_spec(tiny_raw: dict[str, Any], tmp_path: Path):
    """The tiny sweep validated, writing into a temporary run folder."""
    from kdtune.spec import parse_sweep

    return parse_sweep(tiny_raw, "tiny.yaml", output=tmp_path / "run")
