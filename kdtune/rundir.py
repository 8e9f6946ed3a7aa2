"""The run folder, the source of truth: one sub-folder per finished trial, written atomically.

``<run>/trials/<id>/`` holds ``config.json``, ``metrics.json`` (written last: its presence means
finished), ``model.pt`` (a state dict), ``outputs.npz`` (per eval set: probabilities of every
example, labels, penultimate features of a fixed subset and their indices) and, for teachers,
``train_logits-<data>.npy`` (the logits cache their students read).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdtune.errors import KdtuneError

CONFIG, METRICS, MODEL, OUTPUTS = "config.json", "metrics.json", "model.pt", "outputs.npz"


def trial_dir(run_dir: Path, trial_id: str) -> Path:
    """Where trial ``trial_id`` lives (whether or not it has finished)."""
    return Path(run_dir) / "trials" / trial_id


def is_finished(run_dir: Path, trial_id: str) -> bool:
    """Whether ``trial_id`` finished: its ``metrics.json`` exists (it is written last)."""
    return (trial_dir(run_dir, trial_id) / METRICS).is_file()


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=float))
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    """Read a JSON file written by kdtune; a clear one-line error if it is missing or damaged."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise KdtuneError(f"{path}: cannot read kdtune JSON ({e})") from None


class TrialWriter:
    """Collects a trial's files in a scratch folder and publishes them with one rename."""

    def __init__(self, run_dir: Path, trial_id: str) -> None:
        self.final = trial_dir(run_dir, trial_id)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{trial_id}.", dir=self.final.parent))

    def path(self, name: str) -> Path:
        return self.tmp / name

    def save_model(self, state: dict[str, torch.Tensor]) -> None:
        torch.save({k: v.detach().cpu() for k, v in state.items()}, self.path(MODEL))

    def save_outputs(self, arrays: dict[str, np.ndarray]) -> None:
        np.savez(self.path(OUTPUTS), **arrays)

    def commit(self, config: dict[str, Any], metrics: dict[str, Any]) -> Path:
        """Write config and metrics (last) and move the folder into place."""
        write_json(self.path(CONFIG), config)
        write_json(self.path(METRICS), metrics)
        if self.final.exists():
            if (self.final / METRICS).is_file():  # finished meanwhile elsewhere: keep that one
                shutil.rmtree(self.tmp, ignore_errors=True)
                return self.final
            shutil.rmtree(self.final)  # an incomplete leftover of a crash
        os.replace(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def load_state(run_dir: Path, trial_id: str, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """A finished trial's weights (``torch.load(weights_only=True)``)."""
    path = trial_dir(run_dir, trial_id) / MODEL
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError) as e:
        raise KdtuneError(f"{path}: cannot load checkpoint ({e})") from None


def load_outputs(run_dir: Path, trial_id: str) -> dict[str, np.ndarray]:
    """A finished trial's saved outputs (probabilities, labels, features) as arrays."""
    path = trial_dir(run_dir, trial_id) / OUTPUTS
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise KdtuneError(f"{path}: cannot read outputs ({e})") from None


def save_array_atomic(path: Path, array: np.ndarray) -> None:
    """Save one ``.npy`` array atomically (several processes may compute the same cache)."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp.npy")
    np.save(tmp, array)
    os.replace(tmp, path)
