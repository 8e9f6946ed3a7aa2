"""Restart schedules that end mid-cycle are reported (one line per model and role); the run goes on."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kdtune.plan import sweep_warnings
from kdtune.spec.sweepfile import load_sweep, parse_sweep

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_sweeps_end_their_cycles(path):
    assert sweep_warnings(load_sweep(path)) == []


def _spec(tiny_raw, epochs, schedule):
    tiny_raw["train"]["epochs"] = epochs
    tiny_raw["distill"] = {"schedule": {"name": "cosine_restarts", **schedule}}
    return parse_sweep(tiny_raw, "s.yaml")


def test_a_run_that_ends_mid_cycle_warns_once(tiny_raw):
    warnings = sweep_warnings(_spec(tiny_raw, 20, {"first_epochs": 5, "t_mul": 2}))
    assert warnings == [
        "s.yaml: models.MLP as a student (distill.schedule): cosine_restarts (first_epochs 5, t_mul 2) restarts at epoch 15 "
        "of 20 and ends at 0.85 of its peak learning rate; use first_epochs 5, t_mul 1 (4 cycles) or first_epochs 20 "
        "(one cycle, no restart) to end a cycle at epoch 20"
    ]


def test_a_run_that_ends_with_a_cycle_does_not_warn(tiny_raw):
    assert sweep_warnings(_spec(tiny_raw, 30, {"first_epochs": 10, "t_mul": 2})) == []  # 10 + 20


def test_teachers_and_grid_epochs(tiny_raw):
    tiny_raw["models"]["CNN"]["train"] = {"schedule": {"name": "cosine_restarts", "first_epochs": 3}}
    tiny_raw["grid"]["epochs"] = [3, 4]  # students and data rows: 3 and 4 epochs; the CNN teacher: train.epochs 2
    tiny_raw["distill"] = {"schedule": {"name": "cosine_restarts", "first_epochs": 1, "t_mul": 2}}  # cycles 1, 2, 4
    warnings = sweep_warnings(parse_sweep(tiny_raw, "s.yaml"))
    assert len(warnings) == 2, warnings
    assert warnings[0].startswith("s.yaml: models.CNN trained from data (models.CNN.train.schedule): cosine_restarts ")
    assert "does not restart within 2 epochs and ends at 0.25 of its peak" in warnings[0]
    assert warnings[1].startswith("s.yaml: models.MLP as a student with grid epochs 4 (distill.schedule): ")
    assert "restarts at epoch 3 of 4 and ends at 0.85" in warnings[1]


def test_cli_prints_warnings_and_goes_on(tiny_raw, tmp_path):
    p = tmp_path / "s.yaml"
    tiny_raw["train"]["epochs"] = 20
    tiny_raw["distill"] = {"schedule": {"name": "cosine_restarts", "first_epochs": 5, "t_mul": 2}}
    p.write_text(yaml.safe_dump(tiny_raw))
    proc = subprocess.run([sys.executable, "-m", "kdtune", "plan", str(p)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("sweep tiny: ")
    assert proc.stderr.startswith(f"kdtune: warning: {p}: models.MLP as a student (distill.schedule): cosine_restarts")
    assert proc.stderr.count("\n") == 1
