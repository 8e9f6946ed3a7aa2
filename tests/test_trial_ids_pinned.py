"""Trial ids of every shipped sweep (and of a few sweeps written in the other accepted forms) are pinned:
a change in how sweep files are read must not change what they plan, or every run folder would retrain.

The ids in ``tests/data/sweep_trial_ids.json`` were computed before sweep files were read by pydantic models;
regenerate them (``python tests/test_trial_ids_pinned.py``) only with a change that means to change trial ids
(and then bump RESULTS_VERSION or say why not)."""

from __future__ import annotations

import copy
import functools
import json
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
PINNED = REPO / "tests" / "data" / "sweep_trial_ids.json"
FINGERPRINT = "pinned-fingerprint"  # ids depend on the data's hash; a fixed one keeps the data out of this test

_TINY: dict[str, Any] = {
    "data": {"name": "digits", "eval_sets": ["test", "translated"]},
    "models": {"CNN": {"arch": "cnn", "params": {"channels": [4, 4, 8]}}, "MLP": {"arch": "mlp", "params": {"hidden": [32]}}},
    "train": {"epochs": 4, "batch_size": 128, "lr": 0.01},
    "grid": {"students": ["MLP"], "teachers": ["data", "CNN"], "seeds": 2},
}


def _forms() -> dict[str, dict[str, Any]]:
    """Sweeps in forms the shipped ones do not use: shorthands, mappings and every kind of axis."""
    a = copy.deepcopy(_TINY)
    a["models"]["CNN"] = "cnn"  # a label → its arch
    a["train"] |= {"schedule": "cosine", "augment": "translate", "grad_clip": 1, "weight_decay": 0}
    a["data"]["eval_sets"] = ["test", {"name": "shifted", "corruption": "translate", "shift": 2, "source": "val"}, "train"]
    a["data"] |= {"val_size": 200, "split_seed": 3}
    a["grid"] |= {"temperature": 2, "w_hard": [0, 0.5], "loss": ["hinton"], "lr": [0.01, 0.003], "stop": [2, None]}
    b = copy.deepcopy(_TINY)
    b["distill"] = {"schedule": {"name": "exponential", "decay_rate": 0.9}, "start": 0.5, "epochs": 3}
    b["models"]["MLP"]["distill"] = {"lr": 0.002, "select": "last"}
    b["grid"] = {"pairs": ["CNN -> MLP", {"teacher": "self", "student": "CNN"}], "init_seeds": [0, 1], "data_seeds": 2,
                 "teacher_seed": 1, "student_streams": "shared"}  # fmt: skip
    b["outputs"] = {"feature_epochs": [3, 0], "feature_examples": 20}
    b["data"]["invariance"] = {"name": "translate", "max_shift": 1}
    b["data"]["folds"] = 2
    return {"forms_a": a, "forms_b": b}


@functools.cache
def current_ids() -> dict[str, list[str]]:
    """Sweep → the sorted ids of its planned trials (``execution`` does not enter ids; tuned values are skipped)."""
    from kdtune.plan import make_plan
    from kdtune.spec import load_sweep, parse_sweep

    out = {}
    for path in sorted((REPO / "sweeps").glob("*.yaml")):
        spec = load_sweep(path)
        out[path.name] = sorted(make_plan(spec, fingerprint=FINGERPRINT).trials)
    for name, raw in _forms().items():
        spec = parse_sweep(raw, f"{name}.yaml")
        out[name] = sorted(make_plan(spec, fingerprint=FINGERPRINT).trials)
    return out


@pytest.mark.parametrize("name", sorted(json.loads(PINNED.read_text())) if PINNED.exists() else [])
def test_trial_ids_are_pinned(name):
    pinned = json.loads(PINNED.read_text())[name]
    now = current_ids()[name]
    assert now == pinned, f"{name}: {len(set(now) ^ set(pinned))} trial ids differ from the pinned ones"


def test_every_shipped_sweep_is_pinned():
    shipped = {p.name for p in (REPO / "sweeps").glob("*.yaml")}
    assert shipped <= set(json.loads(PINNED.read_text()))


if __name__ == "__main__":  # regenerate (see the docstring)
    sys.path.insert(0, str(REPO))
    PINNED.write_text(json.dumps(current_ids(), indent=1, sort_keys=True) + "\n")
