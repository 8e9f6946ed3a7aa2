"""Shared fixtures: a tiny sweep on the embedded digits data that trains in seconds."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.postgres import postgres_url  # noqa: F401  (a real PostgreSQL server for tests that ask for it)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
KERNEL_SETTINGS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")


def pytest_report_header(config: pytest.Config) -> str:
    """Which SIMD kernels PyTorch runs here: the tests marked ``simd`` depend on them (``make test-simd``)."""
    import os

    import torch

    settings = " ".join(f"{k}={os.environ[k]}" for k in KERNEL_SETTINGS if k in os.environ) or "the machine's own"
    return f"torch {torch.__version__}, CPU kernels {torch.backends.cpu.get_cpu_capability()} ({settings})"


TINY: dict[str, Any] = {
    "name": "tiny",
    "data": {"name": "digits", "eval_sets": ["test", "translated"]},
    "models": {
        "CNN": {"arch": "cnn", "params": {"channels": [4, 4, 8]}},
        "MLP": {"arch": "mlp", "params": {"hidden": [32]}},
    },
    "train": {"epochs": 2, "batch_size": 128, "lr": 0.01},
    "distill": {"schedule": {"name": "cosine_restarts", "first_epochs": 1, "t_mul": 1}},
    "grid": {"students": ["MLP"], "teachers": ["data", "CNN"], "temperature": [4], "w_hard": [0], "w_soft": [1], "seeds": 2},
    "outputs": {"feature_examples": 50},
}


def trainings(run: Path) -> list[str]:
    """The trial ids ``RUN/logs/trainings.jsonl`` records as trained, in order (one line per committed training;
    none where no trial has finished yet)."""
    path = run / "logs" / "trainings.jsonl"
    return [json.loads(line)["id"] for line in path.read_text().splitlines()] if path.is_file() else []


@pytest.fixture
def tiny_raw() -> dict[str, Any]:
    """A fresh copy of the tiny sweep mapping."""
    return copy.deepcopy(TINY)


@pytest.fixture
def tiny_spec(tiny_raw: dict[str, Any], tmp_path: Path):
    """The tiny sweep validated, writing into a temporary run folder."""
    from kdtune.spec.sweepfile import parse_sweep

    return parse_sweep(tiny_raw, "tiny.yaml", output=tmp_path / "run")


@pytest.fixture
def kdtune_run(tmp_path: Path) -> Callable[..., tuple[Path, subprocess.CompletedProcess[str]]]:
    """``kdtune run`` as a user types it, on a sweep mapping written to ``tmp_path/name``, into
    ``tmp_path/run``; returns the sweep file and the finished process."""

    def run(raw: Mapping[str, Any], name: str = "sweep.yaml", env: Mapping[str, str] | None = None):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(dict(raw)))
        cmd = [sys.executable, "-m", "kdtune", "run", str(path), "--out", str(tmp_path / "run")]
        return path, subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)

    return run
